"""Transfer strategies freeze, load and re-rate exactly what they say, for CNNs and RNNs.

The expected schedules below are written out independently of the implementation (from
the strategy table in ecgcore/transfer/strategies.py); every check that a plan says
something is followed by a real Adam step that shows the model obeys it.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from ecgcore.checkpoint import Checkpoint
from ecgcore.errors import EcgcoreError
from ecgcore.models import MODELS, ECGClassifier, create_model
from ecgcore.transfer import (
    STRATEGIES,
    StrategyOptions,
    check_leakage,
    class_mapping,
    final_linear_name,
    get_strategy,
    leakage_report,
    list_strategies,
    map_scores,
    shared_classes,
    source_only_scores,
)
from ecgcore.transfer.strategy import BN_TYPES

LEADS, SAMPLES = 12, 64
OPTIONS = StrategyOptions(freeze_groups=2, head_epochs=2, lr_low=1e-3, lr_high=1e-1)
LR = 1e-2


# ---------------------------------------------------------------- small models of the interface
class TinyCNN(ECGClassifier):
    """Stem (conv+BN), block (conv+BN), head fc1 -> ReLU -> fc2: three groups."""

    def __init__(self, n_classes: int = 4, width: int = 8, n_leads: int = LEADS) -> None:
        super().__init__()
        self.name = "tiny_cnn"
        self.stem = nn.Sequential(nn.Conv1d(n_leads, width, 5, padding=2), nn.BatchNorm1d(width), nn.ReLU())
        self.block = nn.Sequential(nn.Conv1d(width, width, 3, padding=1), nn.BatchNorm1d(width), nn.ReLU())
        self.classifier = nn.Sequential(nn.Linear(width, 16), nn.ReLU(), nn.Linear(16, n_classes))
        self.config = {"n_classes": n_classes, "width": width}

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(self.stem(x)).mean(dim=-1)

    @property
    def head(self) -> nn.Module:
        return self.classifier

    def reset_head(self, n_classes: int) -> None:
        self.classifier[-1] = nn.Linear(self.classifier[-1].in_features, n_classes)

    def layer_groups(self) -> list[nn.Module]:
        return [self.stem, self.block, self.classifier]


class TinyRNN(ECGClassifier):
    """Input BN, two stacked LSTMs, linear head: four groups."""

    def __init__(self, n_classes: int = 4, hidden: int = 8) -> None:
        super().__init__()
        self.name = "tiny_rnn"
        self.norm = nn.BatchNorm1d(LEADS)
        self.lstm1 = nn.LSTM(LEADS, hidden, batch_first=True)
        self.lstm2 = nn.LSTM(hidden, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, n_classes)
        self.config = {"n_classes": n_classes, "hidden": hidden}

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm1(self.norm(x).transpose(1, 2))
        out, _ = self.lstm2(out)
        return out[:, -1]

    @property
    def head(self) -> nn.Module:
        return self.fc

    def reset_head(self, n_classes: int) -> None:
        self.fc = nn.Linear(self.fc.in_features, n_classes)

    def layer_groups(self) -> list[nn.Module]:
        return [self.norm, self.lstm1, self.lstm2, self.fc]


TINY = {"tiny_cnn": TinyCNN, "tiny_rnn": TinyRNN}


def build(name: str, n_classes: int = 4, seed: int = 0) -> ECGClassifier:
    torch.manual_seed(seed)
    if name in TINY:
        return TINY[name](n_classes=n_classes)
    return create_model(name, n_leads=LEADS, n_classes=n_classes, n_samples=registered_samples(name),
                        **SMALL.get(name, {}))


#: Registered models built smaller than their published size (their shape, not their width).
SMALL: dict[str, dict[str, int]] = {"ecg_jepa": {"embed_dim": 32, "depth": 3, "num_heads": 4}}


def registered_samples(name: str) -> int:
    """Short inputs keep every model fast; 128 samples survive every stem (ResNets divide by 32)."""
    return 128


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: a second intra-op thread only adds contention on the shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def checkpoint_of(model: ECGClassifier, classes: list[str], seen: dict | None = None) -> Checkpoint:
    return Checkpoint(state_dict={k: v.detach().clone() for k, v in model.state_dict().items()},
                      model_name=model.name, model_config=dict(model.config), classes=list(classes),
                      class_names=list(classes), prep={}, stage="pretrain", seen=seen or {})


def pretrained(name: str, classes: list[str]) -> Checkpoint:
    """A source whose BN statistics and weights differ from any fresh model's."""
    model = build(name, n_classes=len(classes), seed=123)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(torch.randn_like(tensor) * 0.01)
    return checkpoint_of(model, classes)


# ---------------------------------------------------------------- the schedules, written out
def expected_rates(strategy: str, n: int, epoch: int, o: StrategyOptions) -> list[float | None]:
    head = [None] * (n - 1) + [1.0]
    if strategy in ("scratch", "finetune"):
        return [1.0] * n
    if strategy in ("linear_probe", "random_frozen", "embedding_probe", "attention_probe", "random_embedding_probe"):
        return head  # the probes fit on cached embeddings; planned through the trainer, only their head trains
    if strategy == "partial_freeze":
        return [None] * o.freeze_groups + [1.0] * (n - o.freeze_groups)
    if strategy == "gradual_unfreeze":  # ULMFiT: one more group per stage, lr/2.6 per group down
        k = min(n, epoch // o.unfreeze_epochs + 1)
        return [None] * (n - k) + [o.layer_lr_decay ** -(n - 1 - i) for i in range(n - k, n)]
    if strategy == "lp_ft":
        return head if epoch < o.head_epochs else [1.0] * n
    if strategy == "discriminative_lr":
        if epoch < o.head_epochs:
            return head
        # fastai's even_mults(lr_low, lr_high, n) over every group, the head included
        return [o.lr_low * (o.lr_high / o.lr_low) ** (i / (n - 1)) for i in range(n)]
    if strategy == "source_only":
        return [None] * n
    raise AssertionError(f"no expectation for {strategy}")


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def group_keys(model: ECGClassifier) -> list[set[str]]:
    """State-dict keys (parameters and buffers) of each layer group, found by identity: a group
    may be a container made on the fly (ECG-JEPA's blocks in thirds), not a named submodule."""
    key_of = {id(v): k for k, v in model.state_dict(keep_vars=True).items()}
    return [{key_of[id(v)] for v in group.state_dict(keep_vars=True).values()}
            for group in model.layer_groups()]


def constant_in_training(model: ECGClassifier, keys: set[str]) -> bool:
    """Whether the state entries `keys` stay as they are through a train-mode forward (a fixed
    table such as ECG-JEPA's positions; BN statistics would move)."""
    before = {k: v.detach().clone() for k, v in model.state_dict().items() if k in keys}
    config = model.config
    model.train()
    with torch.no_grad():
        model(torch.randn(2, config["n_leads"], config["n_samples"]))
    after = model.state_dict()
    return all(torch.equal(after[k], v) for k, v in before.items())


def real_step(model: ECGClassifier, plan) -> None:
    """What the trainer does: train mode, frozen modules in eval, Adam over the plan's groups."""
    model.train()
    for module in plan.frozen:
        module.eval()
    optimizer = torch.optim.Adam(plan.param_groups)
    # a registered model takes the shape its config records (ECG-JEPA: its contract's 8 x 2,500)
    x = torch.randn(4, LEADS, SAMPLES) if model.name in TINY else \
        torch.randn(4, model.config["n_leads"], model.config["n_samples"])
    y = (torch.rand(4, model.n_classes) > 0.5).float()
    loss = nn.functional.binary_cross_entropy_with_logits(model(x), y)
    loss.backward()
    optimizer.step()


def is_bn_param(group: nn.Module, param: nn.Parameter) -> bool:
    return any(param is q for m in group.modules() if isinstance(m, BN_TYPES) for q in m.parameters())


def check_plan_and_step(model: ECGClassifier, strategy_name: str, epoch: int, options: StrategyOptions,
                        step: bool = True) -> None:
    """The plan trains exactly the expected groups at the expected rates. In
    discriminative_lr's head phase (fastai's freeze() with train_bn=True) the batch-norm
    layers of frozen groups train too, at the head's rate, and stay in train mode."""
    strategy = get_strategy(strategy_name)
    train_bn = strategy_name == "discriminative_lr" and epoch < options.head_epochs
    # A stale flag from an earlier epoch must not survive: the plan sets requires_grad itself.
    for param in model.parameters():
        param.requires_grad_(epoch % 2 == 0)
    plan = strategy.plan(model, epoch, LR, options)
    groups = model.layer_groups()
    rates = expected_rates(strategy_name, len(groups), epoch, options)
    for index, (group, rate) in enumerate(zip(groups, rates)):
        for param in group.parameters():
            wanted = rate is not None or (train_bn and is_bn_param(group, param))
            assert param.requires_grad == wanted, f"{strategy_name} epoch {epoch} group {index}"
    lrs = {g["group"]: g["lr"] for g in plan.param_groups}
    bn_rate = rates[-1] if train_bn else None
    want = {i: LR * (r if r is not None else bn_rate) for i, r in enumerate(rates)
            if any(p.requires_grad for p in groups[i].parameters())}
    assert lrs.keys() == want.keys()
    for index, lr in want.items():
        assert math.isclose(lrs[index], lr, rel_tol=1e-12), (strategy_name, epoch, index)
    frozen_ids = {id(m) for m in plan.frozen}
    assert frozen_ids == ({id(g) for g, r in zip(groups, rates) if r is None} if not train_bn else set())
    if not plan.param_groups or not step:
        return
    before = snapshot(model)
    real_step(model, plan)
    after = snapshot(model)
    bn_keys = {f"{n}." for n, m in model.named_modules() if isinstance(m, BN_TYPES)}
    for index, (keys, rate) in enumerate(zip(group_keys(model), rates)):
        changed = [k for k in keys if not torch.equal(before[k], after[k])]
        if rate is None:
            if train_bn:  # only batch-norm weights and statistics move
                changed = [k for k in changed if not any(k.startswith(b) for b in bn_keys)]
            assert not changed, f"{strategy_name} epoch {epoch}: frozen group {index} changed: {changed}"
            assert all(p.grad is None for p in groups[index].parameters() if not p.requires_grad)
        else:
            assert changed, f"{strategy_name} epoch {epoch}: trained group {index} did not change"


# ---------------------------------------------------------------- registry and options
def test_registry_lists_every_strategy_with_a_description() -> None:
    assert set(STRATEGIES) == {"scratch", "finetune", "linear_probe", "partial_freeze", "gradual_unfreeze",
                               "discriminative_lr", "lp_ft", "random_frozen", "source_only",
                               "embedding_probe", "attention_probe", "random_embedding_probe"}
    descriptions = list_strategies()
    assert all(text and "\n" not in text for text in descriptions.values())
    assert [n for n, s in STRATEGIES.items() if not s.needs_source] == ["scratch", "random_frozen",
                                                                         "random_embedding_probe"]
    assert [n for n, s in STRATEGIES.items() if not s.trains] == ["source_only"]
    with pytest.raises(EcgcoreError, match="unknown transfer strategy 'fine_tune'.*finetune"):
        get_strategy("fine_tune")


def test_options_round_trip_and_refuse_bad_values() -> None:
    options = StrategyOptions(freeze_groups=1, head_epochs=30, lr_low=1e-3, lr_high=0.1, keep_shared_head=True)
    assert StrategyOptions.from_dict(options.to_dict()) == options
    assert StrategyOptions.from_dict(None) == StrategyOptions()
    with pytest.raises(EcgcoreError, match="unknown strategy option.*freeze_group"):
        StrategyOptions.from_dict({"freeze_group": 2})
    for bad in ({"freeze_groups": -1}, {"head_epochs": 1.5}, {"lr_low": 0}, {"lr_low": 1.0, "lr_high": 0.1},
                {"keep_shared_head": "yes"}):
        with pytest.raises(ValueError):
            StrategyOptions.from_dict(bad)


# ---------------------------------------------------------------- schedules on the small models
@pytest.mark.parametrize("arch", sorted(TINY))
@pytest.mark.parametrize("strategy_name", sorted(set(STRATEGIES) - {"source_only"}))
def test_every_epoch_trains_exactly_the_planned_groups(arch: str, strategy_name: str) -> None:
    classes = ["164889003", "426783006", "59118001"]
    model = build(arch, n_classes=3, seed=1)
    strategy = get_strategy(strategy_name)
    source = pretrained(arch, ["164889003", "270492004"]) if strategy.needs_source else None
    strategy.setup(model, source, classes, OPTIONS)
    assert model.n_classes == 3
    n = len(model.layer_groups())
    for epoch in range(n + 2):
        check_plan_and_step(model, strategy_name, epoch, OPTIONS)


def test_discriminative_lr_spreads_over_every_group_like_fastai_even_mults() -> None:
    """fastai's lr_range(slice(lr/1000, lr/10)) = even_mults over all groups, head included:
    4 groups -> lr/1000, lr/1000*10^(2/3), lr/1000*10^(4/3), lr/10."""
    model = build("tiny_rnn")  # 4 groups: 3 backbone groups + head
    options = StrategyOptions(head_epochs=1, lr_low=1e-3, lr_high=1e-1)
    plan = get_strategy("discriminative_lr").plan(model, 0, 0.5, options)
    # head phase: the head, and group 0's batch-norm layer (train_bn), at lr
    assert [(g["group"], g["lr"]) for g in plan.param_groups] == [(0, 0.5), (3, 0.5)]
    plan = get_strategy("discriminative_lr").plan(model, 1, 0.5, options)
    lrs = [g["lr"] for g in plan.param_groups]
    assert lrs == pytest.approx([0.5e-3, 0.5 * 10 ** (-3 + 2 / 3), 0.5 * 10 ** (-3 + 4 / 3), 0.5e-1])
    assert plan.signature == tuple((g["group"], g["lr"]) for g in plan.param_groups)


def test_signature_changes_only_when_the_plan_does() -> None:
    model = build("tiny_cnn")
    strategy = get_strategy("lp_ft")
    signatures = [strategy.plan(model, epoch, LR, OPTIONS).signature for epoch in range(4)]
    assert signatures[0] == signatures[1] != signatures[2] == signatures[3]
    assert strategy.plan(model, 3, LR * 2, OPTIONS).signature != signatures[3]
    assert strategy.plan(model, 2, LR).signature == strategy.plan(model, 2, LR, StrategyOptions()).signature


def test_partial_freeze_cannot_freeze_the_head() -> None:
    model = build("tiny_cnn")  # 3 groups
    with pytest.raises(EcgcoreError, match="freeze_groups=3.*at most 2"):
        get_strategy("partial_freeze").plan(model, 0, LR, StrategyOptions(freeze_groups=3))


def test_a_parameter_outside_every_group_is_refused() -> None:
    model = build("tiny_cnn")
    model.extra = nn.Parameter(torch.zeros(2))
    with pytest.raises(EcgcoreError, match="no layer group: extra"):
        get_strategy("finetune").plan(model, 0, LR, OPTIONS)


# ---------------------------------------------------------------- setup: loading and heads
@pytest.mark.parametrize("arch", sorted(TINY))
def test_setup_loads_every_source_tensor_except_the_final_linear(arch: str) -> None:
    source = pretrained(arch, ["164889003", "270492004"])
    model = build(arch, n_classes=2, seed=7)
    report = get_strategy("finetune").setup(model, source, ["a", "b", "c"], OPTIONS)
    final = final_linear_name(model)
    state = model.state_dict()
    assert report.loaded == len(source.state_dict) - 2 and report.kept_head_rows == []
    for key, value in source.state_dict.items():
        if key.startswith(final + "."):
            assert state[key].shape[0] == 3
        else:
            assert torch.equal(state[key], value), key
    if arch == "tiny_cnn":  # the rest of a multi-layer head comes from the source
        assert torch.equal(state["classifier.0.weight"], source.state_dict["classifier.0.weight"])


def test_random_strategies_load_nothing() -> None:
    source = pretrained("tiny_cnn", ["x"])
    for name in ("scratch", "random_frozen"):
        model = build("tiny_cnn", seed=3)
        fresh = snapshot(model)
        get_strategy(name).setup(model, source, ["a", "b"], OPTIONS)
        for key, value in model.state_dict().items():
            if not key.startswith("classifier.2.") and value.is_floating_point():
                assert torch.equal(value, fresh[key]) and not torch.equal(value, source.state_dict[key])


@pytest.mark.parametrize("arch", sorted(TINY))
def test_shared_head_rows_are_kept_when_asked_and_only_those(arch: str) -> None:
    source_classes = ["164889003", "59118001", "426783006"]  # AF, RBBB, SNR
    target_classes = ["713427006|59118001", "10370003", "164889003"]  # CRBBB|RBBB, PR, AF
    source = pretrained(arch, source_classes)
    prefix = final_linear_name(build(arch))
    results = {}
    for keep in (False, True):
        model = build(arch, n_classes=5, seed=9)
        torch.manual_seed(42)
        report = get_strategy("lp_ft").setup(model, source, target_classes,
                                             StrategyOptions(keep_shared_head=keep))
        results[keep] = (model.get_submodule(prefix).weight.detach(), model.get_submodule(prefix).bias.detach())
        assert report.kept_head_rows == (["713427006|59118001", "164889003"] if keep else [])
    weight, bias = results[True]
    src_w, src_b = source.state_dict[f"{prefix}.weight"], source.state_dict[f"{prefix}.bias"]
    assert torch.equal(weight[0], src_w[1]) and torch.equal(bias[0], src_b[1])
    assert torch.equal(weight[2], src_w[0]) and torch.equal(bias[2], src_b[0])
    # the unshared row is the fresh initialisation, exactly as without keeping
    assert torch.equal(weight[1], results[False][0][1]) and torch.equal(bias[1], results[False][1][1])
    assert not any(torch.equal(weight[1], row) for row in src_w)


def test_mismatched_architectures_are_refused_clearly() -> None:
    with pytest.raises(EcgcoreError, match="'tiny_rnn'.*'tiny_cnn'.*same architecture"):
        get_strategy("finetune").setup(build("tiny_cnn"), pretrained("tiny_rnn", ["a"]), ["a"], OPTIONS)
    wide = TinyCNN(n_classes=2, width=16)
    with pytest.raises(EcgcoreError, match=r"stem.0.weight: source \(16, 12, 5\), model \(8, 12, 5\)"):
        get_strategy("linear_probe").setup(build("tiny_cnn"), checkpoint_of(wide, ["a", "b"]), ["a"], OPTIONS)
    with pytest.raises(EcgcoreError, match="needs a source"):
        get_strategy("finetune").setup(build("tiny_cnn"), None, ["a"], OPTIONS)


def test_source_only_loads_the_whole_model_and_maps_its_scores() -> None:
    source_classes = ["164889003", "59118001", "426783006"]
    target_classes = ["426783006", "10370003", "713427006"]
    source = pretrained("tiny_cnn", source_classes)
    reference = build("tiny_cnn", n_classes=3)
    reference.load_state_dict(source.state_dict)
    model = build("tiny_cnn", n_classes=len(target_classes), seed=5)
    report = get_strategy("source_only").setup(model, source, target_classes, OPTIONS)
    assert report.loaded == len(source.state_dict) and model.n_classes == 3
    x = torch.randn(5, LEADS, SAMPLES)
    mapped = source_only_scores(model, x, source_classes, target_classes)
    expected = torch.sigmoid(reference.eval()(x)).detach().numpy()
    assert mapped.classes == ["426783006", "713427006"] and mapped.target_index == [0, 2]
    assert mapped.unscorable == ["10370003"]
    np.testing.assert_allclose(mapped.scores, expected[:, [2, 1]], rtol=1e-6)
    assert model.training, "source_only_scores restores the training flag"
    assert not get_strategy("source_only").plan(model, 0, LR, OPTIONS).param_groups


def test_scored_outputs_say_which_columns_score_which_target_class() -> None:
    """Every strategy that trains a head of the target's classes scores all of them from
    their own columns; source_only scores the target classes the source head knows, from
    the source's columns, and refuses a source that knows none."""
    target = ["426783006", "10370003", "713427006"]
    source = checkpoint_of(build("tiny_cnn", n_classes=3), ["164889003", "59118001", "426783006"])
    scores = np.arange(12, dtype=np.float32).reshape(4, 3)
    for name in sorted(set(STRATEGIES) - {"source_only"}):
        outputs = get_strategy(name).scored_outputs(source, target)
        assert (outputs.classes, outputs.columns) == (target, [0, 1, 2]), name
        assert outputs.pick(scores) is scores, "every column in order: the array itself"
    only = get_strategy("source_only").scored_outputs(source, target)
    assert (only.classes, only.columns) == (["426783006", "713427006"], [2, 1])
    assert only.pick(scores).tolist() == scores[:, [2, 1]].tolist()
    with pytest.raises(RuntimeError, match="knows none of the target classes"):
        get_strategy("source_only").scored_outputs(checkpoint_of(build("tiny_cnn", n_classes=1), ["x"]), target)
    with pytest.raises(EcgcoreError, match="needs a source"):
        get_strategy("source_only").scored_outputs(None, target)


def test_phase_reports_of_a_strategy_that_trains_and_of_one_that_does_not() -> None:
    options = StrategyOptions(head_epochs=2)
    reports = get_strategy("lp_ft").phase_reports(3, 5, options, epochs_run=3)
    assert [(r["name"], r["epochs_planned"], r["epochs_run"], r["reached"]) for r in reports] == [
        ("linear probe", 2, 2, True), ("all", 3, 1, True)]
    assert get_strategy("source_only").phase_reports(3, 5, options, epochs_run=0) == []


def test_class_mapping_uses_canonical_snomed_codes() -> None:
    source = ["164889003", "59118001", "164909002", "NORM", "713427006"]
    target = ["713427006|59118001", "733534002|164909002", "NORM", "MI", "164889003"]
    # CRBBB|RBBB: no source key is spelled the same, so the first source class of the group wins
    assert class_mapping(source, target) == {0: 1, 1: 2, 2: 3, 4: 0}
    assert class_mapping(source, ["713427006"]) == {0: 4}  # an exactly equal key wins
    assert shared_classes(source, target) == ["713427006|59118001", "733534002|164909002", "NORM", "164889003"]
    assert class_mapping(["59118001"], ["713427006"]) == {0: 0}
    assert class_mapping(["a"], ["b"]) == {}
    mapped = map_scores(np.array([[0.1, 0.2, 0.3, 0.4, 0.5]]), source, target)
    assert mapped.scores.tolist() == [[0.2, 0.3, 0.4, 0.1]] and mapped.unscorable == ["MI"]


# ---------------------------------------------------------------- leakage
def test_leakage_by_name_and_record_id() -> None:
    seen = {"cpsc": ["A0001", "A0002"], "georgia": ["E00001"]}
    assert check_leakage(seen, "cpsc", ["A0002", "A0003"]) == ["A0002"]
    assert check_leakage(seen, "other", ["A0002"]) == []


def test_leakage_ptbxl_inside_challenge_data() -> None:
    seen = {"cinc2021": ["HR00001", "HR00010", "A0001", "S0001"]}
    assert check_leakage(seen, "ptbxl", ["1", "2", "10", "11"]) == ["1", "10"]
    assert check_leakage(seen, "my_records", ["1", "10"], target_layout="ptbxl") == ["1", "10"]
    # LUDB record 1 is not PTB-XL ecg_id 1
    assert check_leakage(seen, "ludb", ["1", "10"]) == []
    assert check_leakage(seen, "ptbxl_like", ["1"], target_layout="ludb") == []
    # the other way round: pretrained on PTB-XL, tested on the Challenge's copy of it
    assert check_leakage({"PTB-XL": ["1", "3"]}, "cinc2021", ["HR00001", "HR00002", "A0001"]) == ["HR00001"]
    assert check_leakage({"src": ["00003"]}, "cinc2021", ["HR00003"], source_layouts={"src": "ptbxl"}) == ["HR00003"]
    report = leakage_report(seen, "ptbxl", ["1", "2", "10"])
    assert report and report.by_source == {"cinc2021": ["1", "10"]}
    assert "2 of 3 test records of ptbxl" in report.warning and report.to_dict()["n_overlap"] == 2
    assert not leakage_report({}, "ptbxl", ["1"]) and leakage_report({}, "ptbxl", ["1"]).warning == ""


# ---------------------------------------------------------------- every registered architecture
@pytest.mark.parametrize("arch", sorted(MODELS))
def test_strategies_on_registered_model(arch: str) -> None:
    """Per model: source loading (all but the final Linear), the groups each schedule trains,
    and real steps for a linear probe (frozen BN statistics) and a partial freeze."""
    source = pretrained(arch, ["164889003", "426783006"])
    model = build(arch, n_classes=3, seed=2)
    strategy = get_strategy("lp_ft")
    strategy.setup(model, source, ["164889003", "59118001", "270492004"],
                   StrategyOptions(keep_shared_head=True))
    state = model.state_dict()
    final = final_linear_name(model) + "."
    assert all(torch.equal(state[k], v) for k, v in source.state_dict.items() if not k.startswith(final))
    n = len(model.layer_groups())
    assert n >= 2
    final_params = {id(p) for p in model.get_submodule(final[:-1]).parameters()}
    assert final_params <= {id(p) for p in model.layer_groups()[-1].parameters()}, "final Linear in the head group"
    # Every buffer that training moves (BN statistics) lives in some group, so freezing a group
    # freezes its statistics; what no group holds must be a constant (positions).
    outside = set(state) - set().union(*group_keys(model))
    assert not any(isinstance(p, nn.Parameter) for k, p in model.state_dict(keep_vars=True).items()
                   if k in outside), sorted(outside)[:5]
    assert constant_in_training(copy.deepcopy(model), outside), sorted(outside)[:5]
    options = StrategyOptions(freeze_groups=min(2, n - 1), head_epochs=1)
    for name in sorted(set(STRATEGIES) - {"source_only"}):
        for epoch in (0, 1, n):  # plans only (flags, LRs, frozen modules)
            check_plan_and_step(model, name, epoch, options, step=False)
    # real steps: linear probe phase, a frozen prefix, and a partly unfrozen model
    check_plan_and_step(copy.deepcopy(model), "lp_ft", 0, options)
    check_plan_and_step(copy.deepcopy(model), "partial_freeze", 0, options)
    check_plan_and_step(model, "gradual_unfreeze", 1, options)
    # source_only takes the whole source model, head included
    whole = build(arch, n_classes=3, seed=4)
    get_strategy("source_only").setup(whole, source, ["426783006"], options)
    assert whole.n_classes == 2
    assert all(torch.equal(whole.state_dict()[k], v) for k, v in source.state_dict.items())


# ---------------------------------------------------------------- through the real trainer
@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    from ecgcore.data.pipeline import SplitConfig, build_dataset
    from ecgcore.data.prepare.config import PrepConfig
    from ecgcore.data.synthetic import write_demo_data

    root = tmp_path_factory.mktemp("transfer_demo")
    write_demo_data(root / "data", seed=0, scale=0.05)
    return build_dataset(root / "data" / "source_ptbxl", "ptbxl_superdiagnostic",
                         PrepConfig(fs=100, seconds=10, normalize="standard"),
                         SplitConfig(method="patient", val=0.25, test=0.15, seed=0), root / "cache", n_jobs=1)


@pytest.mark.parametrize("arch", ["small_cnn", "gru"])
@pytest.mark.parametrize("strategy_name", ["linear_probe", "partial_freeze"])
def test_the_trainer_keeps_frozen_groups_bit_identical(demo, tmp_path, arch: str, strategy_name: str) -> None:
    """`fit` with a strategy's plan: frozen groups (weights and BN statistics) end exactly as
    loaded from the source; the trained groups moved."""
    from ecgcore.train import TrainConfig, fit

    n_samples = 250  # 2.5 s crops at 100 Hz
    source = pretrained(arch, ["426783006", "164889003"])
    torch.manual_seed(0)
    model = create_model(arch, n_leads=LEADS, n_classes=len(demo.classes), n_samples=n_samples)
    strategy = get_strategy(strategy_name)
    options = StrategyOptions(freeze_groups=1)
    strategy.setup(model, source, list(demo.classes), options)
    result = fit(model, demo, TrainConfig(epochs=2, batch_size=16, lr=1e-2, crop_seconds=2.5, seed=0),
                 plan_fn=lambda m, epoch, lr: strategy.plan(m, epoch, lr, options),
                 checkpoint_dir=tmp_path / "checkpoints")
    state = {k: v.cpu() for k, v in model.state_dict().items()}
    rates = expected_rates(strategy_name, len(model.layer_groups()), 1, options)
    final = final_linear_name(model) + "."
    for keys, rate in zip(group_keys(model), rates):
        for key in keys:
            if rate is None:
                assert torch.equal(state[key], source.state_dict[key]), key
                assert torch.equal(result.best_state[key].cpu(), source.state_dict[key]), key
    trained = [k for keys, r in zip(group_keys(model), rates) if r is not None for k in keys
               if not k.startswith(final) and state[k].is_floating_point()]
    assert any(not torch.equal(state[k], source.state_dict[k]) for k in trained)
