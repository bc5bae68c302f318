"""`bnfast verify [--exact] [--json] [--plot PATH]`: checks Lemma 4.5 of Santurkar et
al. (2018) on Example 3.2 of Dannemann and Junike (2025) and prints the argument step by
step, ending with the verdict (docs/math/lemma_4_5.md has the derivation).

Exit codes: 0 success; 1 the check did not refute the lemma (never expected: it would
mean a bug); 2 usage errors and figures that cannot be written.
"""

import json

from . import _options as options

__all__ = ["register", "render", "run"]

VERDICT = ("Lemma 4.5 of Santurkar et al. (2018) is refuted by Example 3.2 of "
           "Dannemann & Junike (2025).")


def register(subparsers):
    parser = subparsers.add_parser(
        "verify", help="verify that Example 3.2 of Dannemann & Junike (2025) refutes "
                       "Lemma 4.5 of Santurkar et al. (2018)",
        description="Checks inequality (1) of Lemma 4.5 (Santurkar et al. 2018, 'BatchNorm "
                    "leads to a favourable initialization') on Example 3.2 of Dannemann & "
                    "Junike (2025) and prints the argument step by step.")
    options.add_exact(parser)
    options.add_json(parser)
    options.add_plot(parser, "the loss landscapes")
    parser.set_defaults(run=run)


def run(args):
    from ..claims import example_3_2

    try:
        options.check_plot(args)
    except ValueError as exc:
        return options.fail(args, str(exc))
    report = example_3_2(exact=args.exact)
    if args.json:
        fields = report.to_dict()
        fields["verdict"] = VERDICT if report.holds is False else None
        print(json.dumps(fields, indent=2))
    else:
        print(render(report))
    if args.plot is not None:
        def draw(path):
            from ..plot import plot_example_3_2
            plot_example_3_2(path, report)
        code = options.write_plot(args, draw)
        if code:
            return code
    return 0 if report.holds is False else 1


# ---- the text -------------------------------------------------------------------

def _num(report, x, digits=9):
    """A number for the text: exact form and its value, or the float."""
    if x is None:
        return "none"
    value = float(x)
    if report.exact:
        form = str(x)
        shown = f"{value:.{digits}g}"
        return form if form == shown or form == str(int(value)) and value.is_integer() \
            else f"{form} ~ {shown}"
    if abs(value) <= report.tolerance:
        return "0"          # rounding noise (render() shows the computed value once)
    return f"{value:.{digits}g}"


def _vec(report, v, digits=7):
    if v is None:
        return "none"
    values = [float(e) for e in v]
    floats = "(" + ", ".join(f"{e:.{digits}g}" for e in values) + ")"
    if report.exact:
        forms = "(" + ", ".join(str(e) for e in v) + ")"
        return forms if forms == floats else f"{forms} ~ {floats}"
    return floats


def _ray_equation(direction):
    """'3 w1 = 5 w2, w1 > 0' for the ray {t (5, 3) : t > 0}."""
    a1, a2 = (float(e) for e in direction)

    def c(v):
        return f"{v:.7g}"
    if a1 == 0:
        return f"w1 = 0, w2 {'>' if a2 > 0 else '<'} 0"
    return f"{c(a2)} w1 = {c(a1)} w2, w1 {'>' if a1 > 0 else '<'} 0"


def render(report):
    """The step-by-step text of `bnfast verify` for the Example 3.2 report."""
    from ..claims import EXAMPLE_3_2

    X, y = EXAMPLE_3_2["X"], EXAMPLE_3_2["y"]
    n, v = (lambda x: _num(report, x)), (lambda x: _vec(report, x))
    gd = report.gd
    lines = [
        "bnfast verify: Lemma 4.5 of Santurkar et al. (2018), 'BatchNorm leads to a",
        "favourable initialization', against Example 3.2 of Dannemann & Junike (2025)",
        "arithmetic: " + ("exact (sympy rationals and radicals; '~' gives the value)"
                          if report.exact else
                          "float64 (bnfast verify --exact gives every number exactly)"),
        "",
        "The lemma: if <W0, W*> > 0, the BN optimum What* closest to the initialization W0",
        "is closer to W0 than the standard optimum W* is, in the sense of",
        "  (1)  ||W0 - What*||^2 <= ||W0 - W*||^2 - (||W*||^2 - <W*, W0>)^2 / ||W*||^2",
        "",
        "1. The data (the batch is the whole learning set, m = 3 samples in R^2)",
    ]
    for i, (x, t) in enumerate(zip(X, y), start=1):
        lines.append(f"     x({i}) = ({x[0]}, {x[1]})   y({i}) = {t}")
    lines += [
        "   y = 5 x1 + 3 x2 + 3: an affine relation with intercept 3",
        "   network f(x) = w^T x: one neuron, identity activation, no bias",
        f"   BN: gamma = {n(report.gamma)}, beta = {n(report.beta)} (constants), eps = 0, "
        "biased batch variance",
        "",
        "2. The standard network, loss L(w) = sum_i (y_i - w^T x_i)^2",
        f"   optimum W* = {v(report.w_star)} (least squares), L(W*) = "
        f"{n(report.loss_std_at_w_star)}",
        f"   initialization W0 = {v(report.w0)} = W*",
        f"   premise <W0, W*> = {n(report.inner_w0_w_star)} > 0: "
        + ("the lemma applies" if report.premise else "FAILS, the lemma claims nothing"),
        "",
        "3. The BN network, h = X w, loss",
        "   L_BN(w) = sum_i (y_i - gamma (h_i - mean h) / std h - beta)^2   (std: biased)",
        f"   L_BN(W*) = {n(report.loss_bn_at_w_star)}",
        f"   grad L_BN(W*) = {v(report.grad_bn_at_w_star)}",
        f"   its norm {n(report.grad_bn_norm)} is "
        + ("ZERO" if report.w_star_is_bn_critical else
           "NOT zero:\n   W* = W0 is not even a critical point of the BN loss"),
        "",
        "4. The BN optima. L_BN depends on w only through the direction of the centred",
        "   outputs; it is smallest where they correlate best with the centred targets:",
        f"   the open ray {{t {v(report.bn_direction)} : t > 0}}, i.e. "
        f"{_ray_equation(report.bn_direction)}",
        "   (the least-squares slope WITH intercept; W* is the fit WITHOUT one)",
        f"   min L_BN = {n(report.loss_bn_min)}, below L_BN(W0) = L_BN(W*)",
        f"   closest BN optimum to W0: What* = {v(report.bn_optimum)}",
    ]
    if gd is not None:
        end = "(" + ", ".join(f"{e:.7g}" for e in gd.end_point) + ")"
        lines += [
            "   cross-check (float64): bnfast.train runs full-batch gradient descent of the",
            f"   BN network from W0: {gd.steps} steps of size {gd.lr:.4g}, the inverse of a bound",
            "   on the BN loss's curvature near W0 computed from the data (so every step is",
            f"   stable). It ends at {end}, {gd.angle:.1e} rad from the ray:",
            "   "
            + ("agrees with the closed form" if gd.agrees else
               "DOES NOT AGREE with the closed form"),
        ]
    verdict_1 = {True: "holds", False: "FAILS", None: "is not claimed (premise fails)"}
    relation = {True: "<=", False: ">", None: "vs"}[report.holds]
    rhs_zero = n(report.rhs) == "0"
    rounding = ""
    if rhs_zero and not report.exact and float(report.rhs) != 0.0:
        rounding = (f"\n         (computed as {float(report.rhs):.1e}: rounding error, "
                    f"below the tolerance {report.tolerance:.1e})")
    lines += [
        "",
        "5. Both sides of (1)",
        f"   left  ||W0 - What*||^2 = {n(report.lhs)}",
        f"   right ||W0 - W*||^2 - (||W*||^2 - <W*, W0>)^2 / ||W*||^2 = {n(report.rhs)}"
        + rounding,
        f"   {n(report.lhs)} {relation} {n(report.rhs)}: inequality (1) "
        f"{verdict_1[report.holds]}",
    ]
    if rhs_zero and not report.w_star_is_bn_critical:
        lines.append("   With W0 = W* the right side is 0, so (1) would force What* = W0;")
        lines.append("   yet W0 is not even a critical point of the BN loss (step 3).")
    lines.append("")
    if report.holds is False:
        lines += [
            "Verdict: " + VERDICT,
            "The published proof assumes that a local optimum before BN stays one after BN",
            "(Remark 3.3 of Dannemann & Junike); this example shows it does not.",
        ]
    else:  # pragma: no cover - would mean a bug in the checker
        lines.append("Verdict: this instance does NOT refute Lemma 4.5 (unexpected).")
    return "\n".join(lines)
