"""The gate stops realistic bugs planted in the lab's own code, each on the check that exists for it.

    pytest tests/test_gate_mutations.py -q

Every mutation is a one-to-five-line edit a student could make while working on the lab (tests/plant.py
edits the function's source and installs it wherever the experiments reach it). For each, the gate runs
on the whole experiment the bug lives in (all of that experiment's entries, as `make report` would) and
must fail on the entry meant for the bug, with a message that points at it. The unmutated gate passes.
README's "Sanity checks" section lists the same bugs; keep both in step.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from lab.gate import gate_names, run_gate
from plant import plant

pytestmark = pytest.mark.slow
CPU = torch.device("cpu")


@dataclass(frozen=True)
class Mutation:
    id: str
    what: str  # the bug, in words (README lists these)
    target: str  # qualified name of the function edited
    old: str
    new: str
    entry: str  # the gate entry that must fail
    hint: str  # words of that entry's message that point at the bug


MUTATIONS = [
    # --- data -------------------------------------------------------------------------------------------
    Mutation("val_own_stats", "MNIST validation standardised with its own mean/std", "lab.data.mnist_split",
             "standardize(x_val, mean, std)", "standardize(x_val, x_val.mean(), x_val.std())",
             "dropout.data_same_transform", "not standardised with the statistics of the raw training rows"),
    Mutation("overlap", "validation range overlaps the training range by 500 images", "lab.data.mnist_split",
             "train_range, val_range = (0, n_train), (n_train, n_train + n_val)",
             "train_range, val_range = (0, n_train), (n_train - 500, n_train + n_val - 500)",
             "dropout.data_disjoint", "leak from the training set"),
    Mutation("val_from_test", "validation images taken from MNIST's test split", "lab.data.mnist_split",
             "x_train, x_val = x[slice(*train_range)], x[slice(*val_range)]",
             "x_train, x_val = x[slice(*train_range)], load_mnist(train=False, root=root)[0].reshape(-1, 784)[:n_val] / 255.0",
             "dropout.data_disjoint", "test examples appear in training or validation"),
    Mutation("rings_noise_one_sided", "ring radial noise drawn from U(0, 1) instead of U(-1, 1)", "lab.data.two_rings",
             "rng.uniform(-noise, noise, size=n)", "rng.uniform(0.0, noise, size=n)",
             "shallow_init.data_spec", "narrower than ring"),
    Mutation("rings_off_centre", "two-rings points left at the origin (centre offset dropped)", "lab.data.two_rings",
             "axis=1) + np.asarray(center)", "axis=1)", "deep_init.data_spec", "centred"),
    Mutation("train_unnormalised", "MNIST training inputs left unstandardised", "lab.data.mnist_split",
             "        standardize(x_train, mean, std),\n", "        x_train,\n",
             "dropout.data_normalized", "not standardised"),
    Mutation("per_pixel_std", "per-pixel std (zero at the border pixels: 0/0)", "lab.data.mnist_split",
             "mean, std = x_train.mean(), x_train.std()", "mean, std = x_train.mean(0), x_train.std(0)",
             "dropout.data_finite", "non-finite"),
    Mutation("sorted_by_label", "images sorted by label before the split (classes missing)", "lab.data.mnist_split",
             "    x = images.reshape(images.shape[0], -1).float() / 255.0\n",
             "    order = labels.argsort()\n    images, labels = images[order], labels[order]\n"
             "    x = images.reshape(images.shape[0], -1).float() / 255.0\n",
             "dropout.data_classes", "has no example of class"),
    Mutation("rings_val_own_stats", "two-rings validation standardised with its own statistics", "lab.data.rings_split",
             "standardize(raw_val, mean, std)", "standardize(raw_val, raw_val.mean(0), raw_val.std(0))",
             "shallow_init.data_same_transform", "not standardised with the statistics of the raw training rows"),
    # --- labels -----------------------------------------------------------------------------------------
    Mutation("label_shift", "MNIST training labels shifted by one image", "lab.data.mnist_split",
             "labels[slice(*train_range)]", "labels[train_range[0] + 1 : train_range[1] + 1]",
             "dropout.labels_aligned", "Labels misaligned"),
    Mutation("rings_labels_random", "ring labels drawn independently of the radius", "lab.data.two_rings",
             "radius = np.asarray(radii, dtype=np.float64)[labels]",
             "radius = np.asarray(radii, dtype=np.float64)[rng.permutation(labels)]",
             "shallow_init.labels_aligned", "Labels misaligned"),
    Mutation("loop_y_order", "minibatch labels taken in sorted order while images are shuffled",
             "lab.experiments.dropout.train_epoch", "train_step(model, optimizer, x[idx], y[idx])",
             "train_step(model, optimizer, x[idx], y[idx.sort().values])", "dropout.labels_aligned", "Labels misaligned"),
    # --- training loop ------------------------------------------------------------------------------------
    Mutation("first_batch_only", "epoch loop cut to its first minibatch", "lab.experiments.dropout.train_epoch",
             "batches = perm.split(batch_size)", "batches = perm[:batch_size].split(batch_size)",
             "dropout.epoch_coverage", "skips, repeats or invents rows"),
    Mutation("with_replacement", "minibatches sampled with replacement", "lab.experiments.dropout.train_epoch",
             "perm = torch.randperm(x.shape[0], generator=order_gen).to(x.device)",
             "perm = torch.randint(x.shape[0], (x.shape[0],), generator=order_gen).to(x.device)",
             "dropout.epoch_coverage", "skips, repeats or invents rows"),
    Mutation("no_zero_grad", "optimizer.zero_grad() deleted from the train step", "lab.train.train_step",
             "    optimizer.zero_grad(set_to_none=True)\n", "", "dropout.step_reference", "gradients accumulate"),
    Mutation("step_before_backward", "optimizer.step() before loss.backward()", "lab.train.train_step",
             "    loss.backward()\n    optimizer.step()\n", "    optimizer.step()\n    loss.backward()\n",
             "dropout.params_update", "did not move"),
    Mutation("nll_on_logits", "nll_loss on raw logits instead of cross-entropy", "lab.train.train_step",
             "loss = F.cross_entropy(model(x), y)", "loss = F.nll_loss(model(x), y)",
             "dropout.step_reference", "another loss"),
    Mutation("gradient_ascent", "loss sign flipped", "lab.train.train_step",
             "loss = F.cross_entropy(model(x), y)", "loss = -F.cross_entropy(model(x), y)",
             "dropout.loss_decreases", "does not descend the loss"),
    Mutation("train_in_eval_mode", "model.eval() instead of model.train() in the epoch loop",
             "lab.experiments.dropout.train_epoch", "    model.train()\n", "    model.eval()\n",
             "dropout.dropout_rates", "left off in the training loop"),
    # --- optimiser ----------------------------------------------------------------------------------------
    Mutation("lr_x10", "learning rate 10x the configured one", "lab.experiments.dropout.make_optimizer",
             "lr=cfg.lr,", "lr=cfg.lr * 10,", "dropout.optimizer", "lr 0.003 instead of 0.0003"),
    Mutation("last_layer_not_optimised", "optimiser built over all layers but the last",
             "lab.experiments.dropout.make_optimizer", "torch.optim.AdamW(model.parameters(),",
             "torch.optim.AdamW(model.layers[:-1].parameters(),", "dropout.optimizer", "are not optimised"),
    Mutation("adam_not_adamw", "Adam instead of AdamW", "lab.experiments.dropout.make_optimizer",
             "torch.optim.AdamW(", "torch.optim.Adam(", "dropout.optimizer", "Adam instead of AdamW"),
    Mutation("batched_ascent", "batched sweep's update adds the gradient", "lab.batched._Trainer.step",
             "alpha=-self.lr", "alpha=self.lr", "shallow_init.path[batched sweep]", "no longer matches autograd"),
    Mutation("batched_relu_backward", "batched backward skips the ReLU mask", "lab.batched._Trainer.step",
             "dz = _relu_backward(da, self.act[i - 1], 0.0, grad_input=da)", "dz = da",
             "shallow_init.path[batched sweep]", "no longer matches autograd"),
    # --- wiring -------------------------------------------------------------------------------------------
    Mutation("no_relu", "ReLU removed between layers", "lab.models.MLP.forward",
             "h = torch.relu(layer(h))", "h = layer(h)", "dropout.architecture", "does not get ReLU"),
    Mutation("skip_layer", "forward loop skips the second hidden layer", "lab.models.MLP.forward",
             "zip(self.layers[:-1], self.drops)", "zip(self.layers[:-2], self.drops)",
             "dropout.layers_matter", "do not influence the output"),
    Mutation("relu_on_logits", "ReLU applied to the logits", "lab.models.MLP.forward",
             "return self.layers[-1](h)", "return torch.relu(self.layers[-1](h))",
             "dropout.architecture", "logits are not the last layer's output"),
    Mutation("one_hidden_layer", "Part 3 net built with one hidden layer", "lab.experiments.dropout.make_model",
             "widths = (784, *cfg.hidden, 10)", "widths = (784, *cfg.hidden[:1], 10)",
             "dropout.architecture", "layer widths"),
    Mutation("deep_net_short", "deep net built with 19 hidden layers", "lab.experiments.deep_init.widths",
             "[cfg.width] * cfg.depth", "[cfg.width] * (cfg.depth - 1)", "deep_init.architecture", "layer widths"),
    Mutation("batch_centering", "inputs centred on the batch mean inside forward", "lab.models.MLP.forward",
             "h = self.drop_in(x)", "h = self.drop_in(x - x.mean(0, keepdim=True))",
             "dropout.batch_independence", "mix"),
    Mutation("record_pre_relu", "activations recorded before the ReLU", "lab.models.MLP.forward",
             "        h = torch.relu(layer(h))\n        if record is not None:\n            record.append(h)\n",
             "        z = layer(h)\n        h = torch.relu(z)\n        if record is not None:\n            record.append(z)\n",
             "deep_init.activation_record", "reads the wrong tensor"),
    # --- dropout ------------------------------------------------------------------------------------------
    Mutation("no_inverted_scale", "inverted dropout's 1/(1-p) scale dropped", "lab.dropout.dropout",
             "scale = 1.0 / (1.0 - p)", "scale = 1.0", "dropout.dropout_scaling", "rescaling of inverted dropout"),
    Mutation("dropout_ignores_eval", "dropout also active in eval mode", "lab.dropout.dropout",
             "if not training or p == 0.0:", "if p == 0.0:", "dropout.eval_determinism", "eval() does not switch off"),
    Mutation("keep_prob_swapped", "keep and drop probabilities swapped", "lab.dropout.keep_mask",
             "return r >= threshold", "return r < threshold", "dropout.dropout_rates", "keep and drop probabilities swapped"),
    Mutation("no_input_dropout", "input dropout skipped in forward", "lab.models.MLP.forward",
             "h = self.drop_in(x)", "h = x", "dropout.dropout_rates", "input drops 0.000"),
    Mutation("hidden_rate_swapped", "dropout rates passed to the model swapped", "lab.experiments.dropout.make_model",
             "p_input=p_input, p_hidden=p_hidden", "p_input=p_hidden, p_hidden=p_input",
             "dropout.dropout_rates", "rates swapped"),
    Mutation("hidden_rate_from_input", "hidden dropout layers built with the input's rate", "lab.models.MLP.__init__",
             "Dropout(p_hidden, inplace=True) if p_hidden > 0", "Dropout(p_input, inplace=True) if p_hidden > 0",
             "dropout.dropout_rates", "hidden 1 drops 0.2"),
    Mutation("inplace_unscaled", "Monte-Carlo (no_grad, in-place) masks not rescaled", "lab.dropout.dropout",
             "return x.mul_(mask).mul_(scale)", "return x.mul_(mask)",
             "dropout.path[in-place Monte-Carlo pass]", "in-place branch"),
    # --- evaluation ---------------------------------------------------------------------------------------
    Mutation("evaluate_without_eval", "evaluate() forgets model.eval()", "lab.train.evaluate",
             "    model.eval()\n", "", "dropout.evaluate", "dropout still on while scoring"),
    Mutation("evaluate_no_restore", "evaluate() leaves the model in eval mode", "lab.train.evaluate",
             "    model.train(was_training)\n", "", "dropout.evaluate", "left a model that was in train mode"),
    Mutation("evaluate_chunk_mean", "evaluate() divides the summed loss by the chunk size", "lab.train.evaluate",
             "loss, acc = float(loss_sum) / n, int(correct) / n", "loss, acc = float(loss_sum) / step, int(correct) / n",
             "dropout.evaluate", "cross-entropy of the eval logits"),
    Mutation("scores_swapped", "validation error recorded from the training split", "lab.experiments.dropout.score",
             '"val_error_pct": va["error_pct"]', '"val_error_pct": tr["error_pct"]',
             "dropout.split_scores", "train/validation mix-up"),
    Mutation("mc_eval_mode", "Monte-Carlo reference sampled in eval mode", "lab.experiments.dropout.ensemble_members",
             "    model.train()  # dropout on", "    model.eval()  # dropout on",
             "dropout.ensemble_members", "dropout off while sampling"),
    Mutation("mc_no_accumulate", "Monte-Carlo running sum overwritten instead of accumulated",
             "lab.experiments.dropout.mc_ensemble", "            sum_logits += logits\n",
             "            sum_logits = logits\n", "dropout.ensemble_p0", "does not reduce to the plain net"),
    # --- init -----------------------------------------------------------------------------------------------
    Mutation("init_not_applied", "the configured init never applied (PyTorch's default stays)", "lab.models.MLP.__init__",
             "        self.apply(make_init(init, generator))\n", "        pass\n", "dropout.arms_init", "weight std"),
    Mutation("sigma_squared", "N(0, sigma^2) drawn instead of N(0, sigma)", "lab.inits.init_weight_",
             "nn.init.normal_(weight, 0.0, spec.param, generator=g)",
             "nn.init.normal_(weight, 0.0, spec.param ** 2, generator=g)", "dropout.arms_init", "weight std"),
    Mutation("he_fan_out", "He init with fan_out", "lab.inits.init_weight_",
             'nn.init.kaiming_normal_(weight, mode="fan_in"', 'nn.init.kaiming_normal_(weight, mode="fan_out"',
             "deep_init.init[he]", "weight std"),
    Mutation("glorot_uniform", "Glorot uniform where Glorot normal is configured", "lab.inits.init_weight_",
             "nn.init.xavier_normal_(weight, generator=g)", "nn.init.xavier_uniform_(weight, generator=g)",
             "deep_init.init[glorot]", "kurtosis"),
    Mutation("bias_not_zeroed", "biases left at PyTorch's default", "lab.inits.make_init",
             '                if module.bias is not None and parsed.name != "torch":\n                    module.bias.zero_()\n',
             "", "dropout.arms_init", "biases start at"),
    Mutation("generator_ignored", "init draws from the global RNG, not the seeded generator", "lab.inits.init_weight_",
             "nn.init.normal_(weight, 0.0, spec.param, generator=g)", "nn.init.normal_(weight, 0.0, spec.param)",
             "dropout.arms_init", "ignores the seeded generator"),
    Mutation("deep_same_seed", "every deep-net draw uses the same seed", "lab.experiments.deep_init.net_seed",
             "return cfg.seed * 1000 + net", "return cfg.seed * 1000", "deep_init.init[he]",
             "another seed gives the same weights"),
    Mutation("stack_same_seed", "batched sweep seeds every member alike", "lab.batched.init_stack",
             "gen = torch.Generator().manual_seed(seed)", "gen = torch.Generator().manual_seed(seeds[0])",
             "shallow_init.path[batched sweep]", "no longer matches autograd"),
]


def _experiment_gate(experiment: str) -> dict:
    names = [n for n in gate_names() if n.startswith(experiment + ".")]
    return dict(zip(names, run_gate(CPU, names)))


def test_mutations_are_many_and_distinct():
    assert len(MUTATIONS) >= 20
    assert len({m.id for m in MUTATIONS}) == len(MUTATIONS)
    assert len({(m.target, m.old, m.new) for m in MUTATIONS}) == len(MUTATIONS)
    assert all(m.entry in gate_names() for m in MUTATIONS), [m.entry for m in MUTATIONS if m.entry not in gate_names()]


@pytest.mark.parametrize("experiment", ["shallow_init", "deep_init", "dropout"])
def test_unmutated_gate_passes(real_mnist, experiment):
    failed = {n: r.detail for n, r in _experiment_gate(experiment).items() if not r.passed}
    assert not failed


@pytest.mark.parametrize("m", MUTATIONS, ids=[m.id for m in MUTATIONS])
def test_gate_fails_on_the_check_meant_for_the_bug(real_mnist, monkeypatch, m):
    plant(monkeypatch, m.target, m.old, m.new)
    # The gate fails when any entry fails: running the entry meant for the bug proves it (and keeps this test
    # fast); only when it passes does the whole experiment gate run, to say which entries caught it instead.
    (result,) = run_gate(CPU, [m.entry])
    if result.passed:
        failed = [n for n, r in _experiment_gate(m.entry.split(".")[0]).items() if not r.passed]
        pytest.fail(f"{m.what}: {m.entry} passed ({result.detail}); failed instead: {failed}")
    assert m.hint in result.detail, f"{m.entry}'s message does not point at the bug: {result.detail}"


def test_readme_lists_every_planted_bug_and_its_check():
    from lab import PROJECT_ROOT

    readme = (PROJECT_ROOT / "README.md").read_text()
    missing = [m.id for m in MUTATIONS if f"{m.what} (`{m.target.replace('lab.', '', 1)}`) | `{m.entry}`" not in readme]
    assert not missing, f"README's checks section does not list: {missing}"
