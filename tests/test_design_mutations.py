"""The gate stops realistic *design* bugs: an arm that is not what its label says, seeds that do not do what the
report says, optimiser behaviour that drifts after a warm-up.

    pytest tests/test_design_mutations.py -q

Same approach as tests/test_gate_mutations.py (tests/plant.py edits one of the lab's own functions, one to three
lines): for each bug the gate entry meant for it must fail, with a message that points at it. Only that entry
runs (the arms' entries are among the gate's costliest); the unmutated arms' entries pass. README's "Sanity checks"
section lists the same bugs; keep both in step.
"""

from __future__ import annotations

import pytest
import torch

from lab.gate import gate_names, run_gate
from plant import plant
from test_gate_mutations import Mutation

pytestmark = pytest.mark.slow
CPU = torch.device("cpu")
P1, P2, P3 = "lab.experiments.shallow_init", "lab.experiments.deep_init", "lab.experiments.dropout"

DESIGN_MUTATIONS = [
    # --- an arm whose settings differ from its label ------------------------------------------------------
    Mutation("lr_big_at_lab_lr", "the 'learning rate 10' breaker declared with the lab's lr 0.1", f"{P1}.arms",
             "base, lr=cfg.lr_big),", "base, lr=cfg.lr),", "shallow_init.arms_declared",
             "arm lr_big (learning rate 10 (100x)): lr 0.1, the lab's design says 10"),
    Mutation("small_data_lab_lr", "the 'inputs x 0.01 with lr 10' arm run with the lab's lr", f"{P1}.arms",
             "base, scale=s_small, lr=cfg.small_data_lr),", "base, scale=s_small),",
             "shallow_init.arms_declared", "arm small_data_big_lr (inputs x 0.01 with learning rate 10): lr 0.1"),
    Mutation("arms_trained_at_lab_lr", "every Part 1 arm trained at the lab's lr, whatever it declares",
             f"{P1}.train_arms", "arms_[0].steps, arms_[0].lr, xv", "arms_[0].steps, cfg.lr, xv",
             "shallow_init.arms_training", "arm lr_big (learning rate 10 (100x)): step 1 of 1000: the update differs"),
    Mutation("glorot_uniform_arm", "the Glorot arm drawn from the uniform variant while labelled normal",
             f"{P1}.sweep_arms", '"Glorot (xavier_normal_)", "glorot"))', '"Glorot (xavier_normal_)", "glorot_uniform"))',
             "shallow_init.arms_declared", "arm glorot (Glorot (xavier_normal_)): init glorot_uniform, the lab's design "
             "says glorot"),
    Mutation("no_bias_with_bias", "the no-bias arm built with biases", f"{P1}.arm_stack",
             "bias=arms_[0].bias, device=device)", "bias=True, device=device)", "shallow_init.arms_init",
             "arm no_bias (no biases): layers built with biases, the arm promises none"),
    Mutation("train_inputs_unscaled", "the scaling arms' training inputs left unscaled (validation scaled)",
             f"{P1}.arm_data", "x, xv = x * arm.scale, xv * arm.scale", "x, xv = x, xv * arm.scale",
             "shallow_init.arms_data", "arm x0.01 (normalised x 0.01): training inputs are not the normalised data x 0.01"),
    Mutation("labels_never_shuffled", "the 'training labels shuffled' arm trained on the true labels (a typo)",
             f"{P1}.arm_data", 'if arm.labels == "shuffled":', 'if arm.labels == "shuffle":',
             "shallow_init.arms_data", "arm shuffled (training labels shuffled): only 0.0% of the training labels moved"),
    Mutation("dropout_hidden_as_input", "the dropout arm's hidden rate set to the input's 0.2", f"{P3}.arm_settings",
             '"dropout": (cfg.p_input, cfg.p_hidden)', '"dropout": (cfg.p_input, cfg.p_input)',
             "dropout.arms_declared", "p_hidden 0.2, the lab's design says 0.5"),
    Mutation("no_dropout_arm_with_dropout", "the no-dropout arm trained with the configured dropout", f"{P3}.run_arm",
             "arm.p_input, arm.p_hidden, ctx,", "cfg.p_input, cfg.p_hidden, ctx,", "dropout.arms_dropout",
             "arm no_dropout@0 (no dropout): input drops 0.2"),
    Mutation("hidden_rate_from_input_in_run", "each arm trained with its input rate after the hidden layers too",
             f"{P3}.run_arm", "arm.p_input, arm.p_hidden, ctx,", "arm.p_input, arm.p_input, ctx,",
             "dropout.arms_dropout", "hidden 1 drops 0.2"),
    Mutation("part2_rule_copied", "a Part 2 init arm declared with another init's rule (copy-paste)", f"{P2}.arms",
             "parse_init(spec).label, spec, layer_std(spec", 'parse_init(spec).label, "he", layer_std(spec',
             "deep_init.arms_declared", "arm glorot (Glorot (xavier_normal_)): init he, the lab's design says glorot"),
    Mutation("part2_built_with_last_rule", "every Part 2 net built with the last configured init's rule",
             f"{P2}.build_net", "MLP(widths(cfg), init=init,", "MLP(widths(cfg), init=cfg.inits[-1],",
             "deep_init.init[glorot]", "weight std"),
    # --- seeds that do not do what the report says ----------------------------------------------------------
    Mutation("data_from_model_seed", "Part 1's data drawn from the last model seed", f"{P1}.load_data",
             "rings_split(cfg.n_train, cfg.n_val, cfg.seed)", "rings_split(cfg.n_train, cfg.n_val, model_seeds(cfg)[-1])",
             "shallow_init.arms_seeds", "the data are not the lab's draw under the data seed 0"),
    Mutation("seeds_misaligned", "the batched sweep's seed list ordered seed-major while its inits are arm-major",
             f"{P1}.arm_stack", "[s for a in arms_ for s in a.seeds]", "[s for s in arms_[0].seeds for a in arms_]",
             "shallow_init.arms_seeds", "are not the arm and seed they are labelled"),
    Mutation("same_mask_seeds", "the same Monte-Carlo mask seeds for every Part 3 training seed", f"{P3}.arms",
             "tuple(mask_seeds(seed, cfg.n_mask_seeds))", "tuple(mask_seeds(cfg.seed, cfg.n_mask_seeds))",
             "dropout.arms_seeds", "their ensembles share masks"),
    Mutation("same_init_every_seed", "the same init draw for every Part 3 training seed", f"{P3}.make_model",
             "gen = torch.Generator().manual_seed(cfg.seed)", "gen = torch.Generator().manual_seed(0)",
             "dropout.arms_seeds", "give the same init"),
    Mutation("order_per_arm", "the two arms of a seed shuffled in different minibatch orders", f"{P3}.train_arm",
             "manual_seed(cfg.seed + 1)", "manual_seed(cfg.seed + 1 + int(p_hidden > 0))",
             "dropout.arms_seeds", "do not share their order"),
    # --- optimiser behaviour that drifts over training ------------------------------------------------------
    Mutation("momentum_after_warmup", "momentum switched on after a 300-step warm-up (the last gradient re-applied)",
             "lab.batched.fit_batched", "            trainer.step(neg_loss[t])\n",
             "            if t >= 300:\n                torch._foreach_add_(stack.params, trainer.grads, alpha=-0.9 * trainer.lr)\n"
             "            trainer.step(neg_loss[t])\n",
             "shallow_init.arms_training", "step 1000 of 1000: the update differs"),
    Mutation("betas_after_30", "AdamW betas changed after epoch 30", f"{P3}.train_arm",
             "            # mean minibatch loss as seen while training\n",
             "            if epoch > 30:\n                optimizer.param_groups[0][\"betas\"] = (0.5, 0.9)\n"
             "            # mean minibatch loss as seen while training\n",
             "dropout.arms_training", "betas (0.5, 0.9) after 80 epochs"),
    Mutation("clip_after_warmup", "gradient clipping switched on after a warm-up", "lab.train.train_step",
             "    loss.backward()\n",
             "    loss.backward()\n    if optimizer.state and float(next(iter(optimizer.state.values()))[\"step\"]) > 30:\n"
             "        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)\n",
             "dropout.arms_training", "epoch 80 of 80: the update differs"),
    Mutation("wd_dropped_dropout_arm", "weight decay dropped in the dropout arm only", f"{P3}.arm_config",
             '("weight_decay", arm.weight_decay)', '("weight_decay", 0.0 if arm.p_hidden else arm.weight_decay)',
             "dropout.arms_training", "weight_decay 0 after 80 epochs of train_arm"),
]


def test_design_mutations_are_many_distinct_and_target_arms_entries():
    assert len(DESIGN_MUTATIONS) >= 15
    assert len({m.id for m in DESIGN_MUTATIONS}) == len(DESIGN_MUTATIONS)
    names = gate_names()
    assert all(m.entry in names for m in DESIGN_MUTATIONS), [m.entry for m in DESIGN_MUTATIONS if m.entry not in names]


@pytest.mark.parametrize("entry", sorted({m.entry for m in DESIGN_MUTATIONS}))
def test_unmutated_entries_pass(real_mnist, entry):
    (result,) = run_gate(CPU, [entry])
    assert result.passed, result.detail


@pytest.mark.parametrize("m", DESIGN_MUTATIONS, ids=[m.id for m in DESIGN_MUTATIONS])
def test_gate_fails_on_the_design_bug(real_mnist, monkeypatch, m):
    plant(monkeypatch, m.target, m.old, m.new)
    (result,) = run_gate(CPU, [m.entry])
    assert not result.passed, f"{m.what}: {m.entry} passed ({result.detail})"
    assert m.hint in result.detail, f"{m.entry}'s message does not point at the bug: {result.detail}"


def test_readme_lists_every_design_bug_and_its_check():
    from lab import PROJECT_ROOT

    readme = (PROJECT_ROOT / "README.md").read_text()
    missing = [m.id for m in DESIGN_MUTATIONS
               if f"{m.what} (`{m.target.replace('lab.', '', 1)}`) | `{m.entry}`" not in readme]
    assert not missing, f"README's checks section does not list: {missing}"
