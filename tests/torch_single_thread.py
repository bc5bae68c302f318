"""A module fixture for the torch fuzz tests: torch on one thread (tiny tensors: its
pool only costs time), and the worst error/bound ratios printed at the end (-s)."""

import contextlib


@contextlib.contextmanager
def one_torch_thread_and_report(torch, worst, title):
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
    if worst:
        print(f"\nworst error / bound against torch ({title}):")
        for what, ratio in sorted(worst.items()):
            print(f"  {what:<22s} {ratio:.3e}")
