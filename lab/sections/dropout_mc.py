"""Part 3's Monte-Carlo ensembles in the report: figures, tables and sentences from results["mc"].

    figures = mc_figures(mc, sink); lines = mc_discussion(mc)

Each training seed's dropout net has its own thinned-network ensemble curve to k_max (a mean over its mask
seeds) and a per-image-mask reference curve to k_max_reference; every comparison (ensemble vs weight scaling,
logits vs probabilities, thinned vs per-image) is paired per training seed and claimed only under
lab.sections.paired's rule.
"""

from __future__ import annotations

import math

import numpy as np

from lab.plots import new_figure
from lab.plots.dropout import SRIVASTAVA_K, eval_values, mc_matrix, plot_mc_error, plot_mc_modes, plot_mc_paired
from lab.sections import FigureSink, Figure, Table, fmt
from lab.sections.paired import CANNOT_TELL, RULE, Paired, diffs_text, paired, range_text, spread, verdict_cell

NEAR_IMAGES = 2  # "close to weight scaling": within this many validation images
MODE_LABEL = {"logits": "averaged logits", "probs": "averaged probabilities"}


def first_meeting(ks: list[int], errors, target: float) -> int | None:
    """Smallest k on the grid whose error is <= target (None if the curve never gets there)."""
    return next((k for k, e in zip(ks, errors) if e is not None and e <= target), None)


def near_from(ks: list[int], errors, target: float, resolution: float) -> int | None:
    """Smallest k from which every larger k stays within NEAR_IMAGES images above target (None: never)."""
    within = [e - target <= NEAR_IMAGES * resolution + 1e-4 for e in errors]  # 1e-4: float32 rounding of images
    return next((k for i, k in enumerate(ks) if all(within[i:])), None)


def _column(mc: dict, k: int, mode: str = "logits", key: str = "error_pct", estimator: str = "thinned") -> list[float]:
    """One value per training seed at ensemble size k."""
    grid = mc["k_grid"] if estimator == "thinned" else mc["k_grid_reference"]
    return [float(v) for v in mc_matrix(mc, mode, key, estimator)[:, grid.index(k)]]


def _ks_text(values: list[int | None]) -> str:
    """'k = 70, never, k = 200': one entry per training seed (never: not on the grid)."""
    return ", ".join(f"k = {k:,}" if k is not None else "never" for k in values)


def _ratio(mc: dict, what: str) -> float | None:
    t = mc.get("pass_time_s") or {}
    return t[what] / t["eval"] if t.get(what) and t.get("eval") else None


def _n_seeds(mc: dict) -> str:
    n = len(mc["runs"])
    return f"{n} training seed{'s' if n != 1 else ''}"


def _mask_text(mc: dict) -> str:
    n = len(mc["runs"][0]["mask_seeds"])
    return "one mask seed each" if n == 1 else f"{n} mask seeds each, averaged per training seed"


def mc_figures(mc: dict, sink: FigureSink) -> list[Figure]:
    fig, axes = new_figure(ncols=2, width=5.4, height=4.0)
    plot_mc_error(mc, "logits", axes[0, 0])
    axes[0, 0].set_title("Monte-Carlo dropout ensemble vs weight scaling")
    plot_mc_paired(mc, "logits", axes[0, 1])
    axes[0, 1].set_title("paired: ensemble minus eval mode, per seed")
    ref = mc["k_grid_reference"]
    figures = [sink.add(
        "p3_mc", fig,
        f"Left: error of each training seed's dropout net as an ensemble of k thinned networks (one dropout mask per "
        f"member, shared by all {mc['n_images']:,} validation images), logits averaged, every k of a seed read off one "
        f"run of members with running averages; mean over {_n_seeds(mc)} ({_mask_text(mc)}), band: min-max over the "
        f"training seeds."
        + (f" Dotted: the per-image-mask estimator (the ordinary train-mode pass) on the same nets up to k = {ref[-1]:,}."
           if ref else "")
        + " Dashed: the same nets in eval mode (weight scaling; band: min-max over seeds). Right: ensemble error minus "
          "the same net's eval-mode error, per training seed (thin) and their mean.")]
    fig, axes = new_figure(ncols=2, width=5.0, height=3.6)
    plot_mc_modes(mc, "error", axes[0, 0])
    axes[0, 0].set_title("error: logits vs probabilities averaged")
    plot_mc_modes(mc, "nll", axes[0, 1])
    axes[0, 1].set_title("NLL: logits vs probabilities averaged")
    figures.append(sink.add(
        "p3_mc_modes", fig,
        "Thinned-network ensembles averaging logits (a geometric mean of the members' distributions, renormalised) "
        "against averaging probabilities (the arithmetic mean), by error and by negative log-likelihood; mean and "
        "min-max band over training seeds.", appendix=True))
    return figures


def mc_table(mc: dict) -> Table:
    ks, ref_ks = mc["k_grid"], mc["k_grid_reference"]
    ratio = _ratio(mc, "thinned")
    thinned_s = (mc.get("pass_time_s") or {}).get("thinned")
    rows = [["eval mode (weight scaling)", range_text(spread(eval_values(mc)), 2, " %"), "", "", "1",
             fmt((mc.get("pass_time_s") or {}).get("eval"), 3)]]
    for k in ks:
        rows.append([
            f"k = {k:,}",
            range_text(spread(_column(mc, k)), 2, " %"),
            range_text(spread(_column(mc, k, "probs")), 2, " %"),
            range_text(spread(_column(mc, k, estimator="per_image")), 2, " %") if k in ref_ks else "",
            fmt(k * ratio, 3) if ratio is not None else "n/a",
            fmt(k * thinned_s, 3) if thinned_s else "n/a",
        ])
    t = mc.get("pass_time_s") or {}
    return Table(
        name="p3_mc_k", appendix=True,
        caption=f"Monte-Carlo dropout ensembles on {mc['n_images']:,} validation images: error, mean [min, max] over "
                f"{_n_seeds(mc)} ({_mask_text(mc)})",
        columns=["ensemble", "thinned nets, logits averaged", "thinned nets, probabilities averaged",
                 "per-image masks, logits averaged (reference)", "cost (eval passes)", "time (s)"],
        rows=rows,
        note=f"One thinned-network pass took {fmt(t.get('thinned', math.nan) * 1e3, 3)} ms, one per-image-mask "
             f"(train-mode) pass {fmt(t.get('per_image', math.nan) * 1e3, 3)} ms and one eval-mode pass "
             f"{fmt(t.get('eval', math.nan) * 1e3, 3)} ms over these images (median of 3, measured once in this run), so "
             f"a thinned member costs {fmt(ratio, 3)} eval passes; one image is {100 / mc['n_images']:.3f} percentage "
             f"points.",
    )


def reference_ends(mc: dict) -> list[int]:
    """The smallest and largest k of the per-image reference (the estimators are compared there)."""
    ref = mc["k_grid_reference"]
    return sorted({ref[0], ref[-1]}) if ref else []


def seed_pairs(mc: dict) -> dict[str, Paired]:
    """The ensemble's paired comparisons over training seeds, at k = 1, the largest reference k and k_max."""
    ks, ev = mc["k_grid"], list(eval_values(mc))
    top = ks[-1]
    out = {
        "k1_vs_eval": paired(_column(mc, 1), ev),
        "kmax_vs_eval": paired(_column(mc, top), ev),
        "kmax_probs_vs_eval": paired(_column(mc, top, "probs"), ev),
        "probs_vs_logits": paired(_column(mc, top, "probs"), _column(mc, top)),
        "nll_probs_vs_logits": paired(_column(mc, top, "probs", "nll"), _column(mc, top, "logits", "nll")),
        "nll_probs_vs_eval": paired(_column(mc, top, "probs", "nll"), list(eval_values(mc, "nll"))),
        "nll_logits_vs_eval": paired(_column(mc, top, "logits", "nll"), list(eval_values(mc, "nll"))),
    }
    for k in reference_ends(mc):
        out[f"thinned_vs_per_image_k{k}"] = paired(_column(mc, k), _column(mc, k, estimator="per_image"))
    return out


def mc_seed_table(mc: dict) -> Table:
    ks, ref_ks = mc["k_grid"], mc["k_grid_reference"]
    top = ks[-1]
    ev = list(eval_values(mc))
    cols = [("k = 1", _column(mc, 1)), (f"k = {top:,}", _column(mc, top)),
            (f"k = {top:,} - eval", [a - b for a, b in zip(_column(mc, top), ev)]),
            (f"k = {top:,}, probabilities - logits", [a - b for a, b in zip(_column(mc, top, "probs"), _column(mc, top))])]
    if ref_ks:
        kr = ref_ks[-1]
        cols.append((f"k = {kr:,}: thinned - per-image",
                     [a - b for a, b in zip(_column(mc, kr), _column(mc, kr, estimator="per_image"))]))
    meets = [first_meeting(ks, mc_matrix(mc, "logits")[i], e) for i, e in enumerate(ev)]
    rows = []
    for i, r in enumerate(mc["runs"]):
        rows.append([str(r["train_seed"]), f"{ev[i]:.2f} %"]
                    + [f"{v[i]:.2f} %" if j < 2 else f"{v[i]:+.2f}" for j, (_, v) in enumerate(cols)]
                    + [_ks_text([meets[i]])])
    intervals = [_interval_cell(paired(v, [0.0] * len(v))) for _, v in cols[2:]]  # the columns of differences
    rows.append(["mean", f"{np.mean(ev):.2f} %"]
                + [f"{np.mean(v):.2f} %" if j < 2 else f"{np.mean(v):+.2f}" for j, (_, v) in enumerate(cols)] + [""])
    rows.append(["95 % interval of the mean difference", "", "", ""]
                + intervals + [""])
    return Table(
        name="p3_mc_seeds",
        caption=f"Ensembles per training seed (logits averaged unless stated; differences in points on "
                f"{mc['n_images']:,} validation images)",
        columns=["training seed", "eval mode", *[c for c, _ in cols], "first k at or below eval mode"],
        rows=rows,
        note=f"Rule: {RULE}. The thinned and per-image estimators are the same for every single image, so their "
             f"difference should be 0 in expectation.",
    )


_interval_cell = verdict_cell  # one wording for every table of intervals (lab.sections.paired)


def _shown_ks(ks: list[int]) -> list[int]:
    return [k for k in ks if k in (2, 10, ks[-1]) or k == SRIVASTAVA_K]


def mc_discussion(mc: dict) -> list[str]:
    lines = []
    ks, top = mc["k_grid"], mc["k_grid"][-1]
    ev = spread(eval_values(mc))
    pairs = seed_pairs(mc)
    resolution = 100.0 / mc["n_images"]
    k1 = pairs["k1_vs_eval"]
    k1_words = {"higher": "worse than eval mode, an effect by the rule", "lower": "better than eval mode, an effect by "
                "the rule", CANNOT_TELL: "this run cannot tell it from eval mode"}[k1.verdict]
    lines.append(
        f"A single thinned network (k = 1, one dropout mask for all images) errs on {range_text(spread(_column(mc, 1)), 2, ' %')} of the {mc['n_images']:,} "
        f"validation images vs {range_text(ev, 2, ' %')} in eval mode (mean [min, max] over {_n_seeds(mc)}; paired "
        f"{diffs_text(k1, 'points')}): {k1_words}. Averaging k members: "
        + ", ".join(f"k = {k:,}: {range_text(spread(_column(mc, k)), 2, ' %')}" for k in _shown_ks(ks))
        + " (logits averaged)."
    )
    ev_list = list(eval_values(mc))
    for mode in ("logits", "probs"):
        curves = mc_matrix(mc, mode)
        meets = [first_meeting(ks, curves[i], e) for i, e in enumerate(ev_list)]
        hit = [k for k in meets if k is not None]
        when = ("no training seed's ensemble reached its net's eval-mode error" if not hit else
                f"every training seed's ensemble reached its net's eval-mode error" if len(hit) == len(meets) else
                f"{len(hit)} of {len(meets)} training seeds' ensembles reached their net's eval-mode error")
        lines.append(
            f"With {MODE_LABEL[mode]} {when} within k = {top:,} (first k at or below it, per training seed: "
            f"{_ks_text(meets)}); Srivastava et al. (2014, section 7.5) found the two matching at about "
            f"k = {SRIVASTAVA_K} on MNIST."
        )
    near = [near_from(ks, mc_matrix(mc, "logits")[i], e, resolution) for i, e in enumerate(ev_list)]
    lines.append(
        f"Meeting points rest on single images ({resolution:.3f} points each): the logit-averaged ensemble stays within "
        f"{NEAR_IMAGES} images ({NEAR_IMAGES * resolution:.3f} points) above weight scaling for every larger k from, per "
        f"training seed: {_ks_text(near)} (never: not by k = {top:,})."
    )
    lines.append(_kmax_sentence(mc, pairs["kmax_vs_eval"], resolution))
    pl = pairs["probs_vs_logits"]
    better = {"higher": "averaging logits is lower, an effect by the rule", "lower": "averaging probabilities is lower, "
              "an effect by the rule", CANNOT_TELL: "this run cannot tell which average is lower"}[pl.verdict]
    lines.append(
        f"Logits vs probabilities at k = {top:,}: {range_text(spread(_column(mc, top)), 2, ' %')} vs "
        f"{range_text(spread(_column(mc, top, 'probs')), 2, ' %')}; probabilities minus logits {diffs_text(pl, 'points')}: "
        f"{better}."
    )
    lines.append(nll_sentence(mc, pairs))
    ref = _reference_sentence(mc, pairs)
    if ref:
        lines.append(ref)
    cost = _cost_sentence(mc)
    if cost:
        lines.append(cost)
    return lines


def _kmax_sentence(mc: dict, p: Paired, resolution: float) -> str:
    top = mc["k_grid"][-1]
    images = abs(p.mean) / resolution
    ratio = _ratio(mc, "thinned") or 1.0
    if p.verdict == "lower":
        return (f"The k = {top:,} ensemble beats weight scaling: ensemble minus eval mode {diffs_text(p, 'points')} "
                f"({images:.0f} images on average), an effect by the rule, at {top * ratio:,.0f}x the cost of one eval pass.")
    if p.verdict == "higher":
        return (f"Even k = {top:,} stays above weight scaling: ensemble minus eval mode {diffs_text(p, 'points')} "
                f"({images:.0f} images on average), an effect by the rule: the one-pass approximation is at least as "
                f"good as the sampled ensemble here.")
    return (f"This run cannot tell the k = {top:,} ensemble from weight scaling: ensemble minus eval mode "
            f"{diffs_text(p, 'points')} ({images:.0f} images on average)"
            + ("; the interval includes 0" if p.has_interval else "") + ". Weight scaling gets there in one pass.")


def _relative(a: float, b: float) -> float:
    """|a - b| relative to the smaller of the two (0 when equal, inf when the smaller is 0)."""
    low = min(a, b)
    return 0.0 if a == b else math.inf if low <= 0 else abs(a - b) / low


def lowest_nll(pairs: dict[str, Paired]) -> str | None:
    """Which of the three has the lowest NLL, only where both of its paired comparisons say so."""
    pl, pe, le = pairs["nll_probs_vs_logits"], pairs["nll_probs_vs_eval"], pairs["nll_logits_vs_eval"]
    if pl.verdict == "lower" and pe.verdict == "lower":
        return "averaged probabilities"
    if pl.verdict == "higher" and le.verdict == "lower":
        return "averaged logits"
    if pe.verdict == "higher" and le.verdict == "higher":
        return "weight scaling"
    return None


def nll_sentence(mc: dict, pairs: dict[str, Paired]) -> str:
    """Logits vs probabilities by NLL at k_max ('more' / 'less' than by error, on the means), and which of the two
    averages and weight scaling gives the lowest NLL, claimed only where the paired rule says so."""
    top = mc["k_grid"][-1]
    nl, npb = spread(_column(mc, top, "logits", "nll")), spread(_column(mc, top, "probs", "nll"))
    ne = spread(eval_values(mc, "nll"))
    el, ep = spread(_column(mc, top)).mean, spread(_column(mc, top, "probs")).mean
    rel_nll, rel_err = _relative(nl.mean, npb.mean), _relative(el, ep)
    how = "more" if rel_nll > rel_err else "less" if rel_nll < rel_err else "as much"
    rel = lambda r: "n/a" if math.isinf(r) else f"{100 * r:.0f} %"
    lowest = lowest_nll(pairs)
    claim = (f"{lowest} {'give' if lowest.startswith('averaged') else 'gives'} the lowest NLL, lower than each of the "
             f"other two in every paired comparison by the rule" if lowest else
             "this run cannot tell which of the three gives the lowest NLL")
    return (
        f"By negative log-likelihood the two averages differ {how} than by error (relative difference of the means "
        f"{rel(rel_nll)} in NLL vs {rel(rel_err)} in error): at k = {top:,} averaged probabilities reach "
        f"{range_text(npb, 4)}, averaged logits {range_text(nl, 4)}, weight scaling {range_text(ne, 4)}; probabilities "
        f"minus logits {diffs_text(pairs['nll_probs_vs_logits'], digits=4)}; {claim}."
    )


def _reference_sentence(mc: dict, pairs: dict[str, Paired]) -> str | None:
    ref_ks = mc["k_grid_reference"]
    if not ref_ks:
        return None
    parts, differ = [], []
    for k in reference_ends(mc):
        p = pairs[f"thinned_vs_per_image_k{k}"]
        parts.append(f"at k = {k:,} {range_text(spread(_column(mc, k)), 2, ' %')} vs "
                     f"{range_text(spread(_column(mc, k, estimator='per_image')), 2, ' %')} (thinned minus per-image "
                     f"{diffs_text(p, 'points')})")
        if p.effect:
            differ.append(k)
    verdict = ("this run cannot tell them apart, as expected: for every single image the two are the same estimator"
               if not differ else
               f"they differ by the rule at k = {', '.join(f'{k:,}' for k in differ)}, which the same estimator per image "
               f"should do only by chance (about 1 in 20 per comparison) or through a bug in one of them")
    return (f"Thinned networks against per-image masks (the ordinary train-mode pass, the reference estimator, on the "
            f"same nets): " + "; ".join(parts) + f": {verdict}. One mask shared by all images correlates their errors, "
            f"which widens the spread between mask draws, not the expected error.")


def _cost_sentence(mc: dict) -> str | None:
    thin, per = _ratio(mc, "thinned"), _ratio(mc, "per_image")
    if not thin:
        return None
    top = mc["k_grid"][-1]
    return (f"Cost: one thinned-network pass cost {thin:.2f} eval passes"
            + (f" and one per-image-mask pass {per:.2f} ({per / thin:.1f}x the thinned one)" if per else "")
            + f", so k = {top:,} costs {top * thin:,.0f} eval passes per training seed; all the ensembles of this part "
              f"({_n_seeds(mc)}, {_mask_text(mc)}, with their references) took {mc['wall_s']:.0f} s.")


__all__ = ["first_meeting", "lowest_nll", "mc_discussion", "mc_figures", "mc_seed_table", "mc_table", "near_from",
           "nll_sentence", "seed_pairs"]
