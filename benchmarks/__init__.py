"""bnfast's asv benchmark suite (configuration: asv.conf.json in this directory)."""

import os

# The reference training loops do small matrix products with NumPy's BLAS. OpenBLAS
# starts a thread per core for them; on a shared 2-core machine that oversubscription
# makes the reference loops 5-10x slower and erratic. The native loops are timed on one
# thread, so the reference's BLAS gets one too (the BN kernels use no BLAS). Set
# before NumPy is first imported; an explicit setting in the environment wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
