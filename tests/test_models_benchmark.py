"""The PTB-XL benchmark's architectures: shapes at the benchmark's crop length (250) and the
full 10 s window (1000), the transfer interface (layer groups, reset_head), rebuilding from
`config`, and the head and pooling the benchmark specifies."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ecgcore.errors import EcgcoreError
from ecgcore.models import create_model
from ecgcore.models.benchmark_cnn import XBottleneck, inception_kernels
from ecgcore.models.heads import ConcatPool1d, ConcatPoolRNN, MLPHead

CNNS = ["xresnet1d50", "xresnet1d101", "inception1d", "resnet1d_wang", "fcn_wang"]
RNNS = ["lstm", "lstm_bidir", "gru"]
ALL = CNNS + RNNS

# Trainable parameters with 12 leads and C = 71 (PTB-XL "all"). fcn_wang, resnet1d_wang and
# lstm were checked by hand, e.g. fcn_wang: convs 12*128*8 + 128*256*5 + 256*128*3 (no bias)
# + BN 2*(128+256+128) + head BN 2*256 + 256*128+128 + BN 2*128 + 128*71+71 = 318,279.
PARAMS_C71 = {
    "xresnet1d50": 962_503,
    "xresnet1d101": 1_880_775,
    "inception1d": 516_167,
    "resnet1d_wang": 481_863,
    "fcn_wang": 318_279,
    "lstm": 912_199,
    "lstm_bidir": 2_339_143,
    "gru": 711_495,
}


def n_trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: on a shared 2-core machine, two threads that wait on each other
    make the recurrent models' backward pass ~10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize("name", ALL)
def test_forward_backward_at_crop_and_full_length(name: str) -> None:
    model = create_model(name, n_leads=12, n_classes=7)
    model.train()
    for length in (250, 1000):
        model.zero_grad()
        x = torch.randn(2, 12, length)
        out = model(x)
        assert out.shape == (2, 7)
        assert torch.isfinite(out).all()
        nn.functional.binary_cross_entropy_with_logits(out, torch.ones_like(out)).backward()
        missing = [n for n, p in model.named_parameters() if p.grad is None]
        assert not missing, f"{name} at {length}: no gradient for {missing[:3]}"
        head_grad = [p.grad.abs().sum().item() for p in model.head.parameters()]
        assert sum(head_grad) > 0
    assert model.embed(torch.randn(2, 12, 250)).shape == (2, model.feature_dim)


@pytest.mark.parametrize("name", ALL)
def test_parameter_count_for_ptbxl_all(name: str) -> None:
    assert n_trainable(create_model(name, n_leads=12, n_classes=71)) == PARAMS_C71[name]


@pytest.mark.parametrize("name", ALL)
def test_layer_groups_partition_parameters_head_last(name: str) -> None:
    model = create_model(name, n_classes=5)
    groups = model.layer_groups()
    assert groups[-1] is model.head
    seen: list[int] = [id(p) for g in groups for p in g.parameters()]
    assert len(seen) == len(set(seen)), "a parameter is in two groups"
    assert set(seen) == {id(p) for p in model.parameters()}
    assert all(any(True for _ in g.parameters()) for g in groups), "an empty group"


def test_layer_group_layout_per_family() -> None:
    assert len(create_model("xresnet1d101").layer_groups()) == 6   # stem, 4 stages, head
    assert len(create_model("inception1d").layer_groups()) == 3    # 2 residual stages, head
    assert len(create_model("inception1d", depth=9).layer_groups()) == 4
    assert len(create_model("resnet1d_wang").layer_groups()) == 5  # stem, 3 blocks, head
    assert len(create_model("fcn_wang").layer_groups()) == 4       # 3 conv blocks, head
    for name in RNNS:
        groups = create_model(name).layer_groups()
        assert len(groups) == 2 and isinstance(groups[0].rnn, (nn.LSTM, nn.GRU))


@pytest.mark.parametrize("name", ALL)
def test_reset_head_keeps_backbone_and_changes_width(name: str) -> None:
    model = create_model(name, n_classes=71)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    old_final = [m for m in model.head.modules() if isinstance(m, nn.Linear)][-1]
    model.reset_head(3)
    assert model.n_classes == 3
    after = model.state_dict()
    changed = {k for k in before if k not in after or not torch.equal(before[k], after[k])}
    final_keys = {k for k in before if k.startswith("classifier.") and
                  before[k].ndim > 0 and before[k].shape[0] == 71}
    assert changed == final_keys and len(final_keys) == 2  # only final weight and bias
    new_final = [m for m in model.head.modules() if isinstance(m, nn.Linear)][-1]
    assert new_final is not old_final and new_final.in_features == old_final.in_features
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(2, 12, 250)).shape == (2, 3)


@pytest.mark.parametrize("name", ALL)
def test_rebuild_from_config_and_eval_determinism(name: str) -> None:
    model = create_model(name, n_leads=12, n_classes=4, n_samples=1000)
    twin = create_model(name, **model.config)
    twin.load_state_dict(model.state_dict())  # strict: same architecture
    model.eval()
    twin.eval()
    x = torch.randn(2, 12, 250)
    with torch.no_grad():
        a, b, c = model(x), model(x), twin(x)
    assert torch.equal(a, b)
    torch.testing.assert_close(a, c)


def test_non_default_config_survives_rebuild() -> None:
    model = create_model("inception1d", n_leads=3, n_classes=2, head_hidden=[64],
                         head_dropout=0.2, n_filters=16)
    twin = create_model("inception1d", **model.config)
    twin.load_state_dict(model.state_dict())
    assert twin.feature_dim == 2 * 4 * 16
    linears = [m for m in twin.head.modules() if isinstance(m, nn.Linear)]
    assert [m.out_features for m in linears] == [64, 2]
    assert [m.p for m in twin.head.modules() if isinstance(m, nn.Dropout)] == [0.1, 0.2]


@pytest.mark.parametrize("name", ["xresnet1d50", "inception1d", "resnet1d_wang", "gru"])
def test_any_lead_count(name: str) -> None:
    model = create_model(name, n_leads=1, n_classes=2).eval()
    with torch.no_grad():
        assert model(torch.randn(3, 1, 300)).shape == (3, 2)
    with pytest.raises(ValueError, match="1 leads"):
        model(torch.randn(3, 12, 300))


def test_unknown_option_is_a_clear_error() -> None:
    with pytest.raises(EcgcoreError, match="fcn_wang"):
        create_model("fcn_wang", kernel=3)


def test_benchmark_head_layout() -> None:
    head = MLPHead(512, 71)
    kinds = [type(m) for m in head]
    assert kinds == [nn.BatchNorm1d, nn.Dropout, nn.Linear, nn.ReLU,
                     nn.BatchNorm1d, nn.Dropout, nn.Linear]
    assert [head[1].p, head[5].p] == [0.25, 0.5]
    assert (head[2].in_features, head[2].out_features) == (512, 128)
    assert (head[6].in_features, head[6].out_features) == (128, 71)
    assert [type(m) for m in MLPHead(8, 2, hidden=())] == [nn.BatchNorm1d, nn.Dropout, nn.Linear]


def test_concat_pool_values() -> None:
    x = torch.tensor([[[1.0, 3.0, 2.0], [0.0, -1.0, -2.0]]])  # (1, 2 channels, 3 steps)
    assert ConcatPool1d()(x).tolist() == [[3.0, 0.0, 2.0, -1.0]]  # [max..., mean...]
    out = torch.arange(12.0).reshape(1, 3, 4)  # (batch, time 3, 2 directions x hidden 2)
    uni = ConcatPoolRNN(bidirectional=False)(out)
    assert uni.tolist() == [[4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 8.0, 9.0, 10.0, 11.0]]
    bi = ConcatPoolRNN(bidirectional=True)(out)
    assert bi[0, 8:].tolist() == [8.0, 9.0, 2.0, 3.0]  # forward at t=-1, backward at t=0


def test_rnn_last_state_matches_hidden_state() -> None:
    model = create_model("lstm_bidir", n_leads=2, n_classes=2, hidden=4, n_layers=1).eval()
    rnn = model.stages[0].rnn
    x = torch.randn(1, 2, 260)
    with torch.no_grad():
        _, (h, _) = rnn(x.transpose(1, 2))
        pooled = model.embed(x)
    torch.testing.assert_close(pooled[0, 16:], torch.cat([h[0, 0], h[1, 0]]))


def test_architecture_facts() -> None:
    assert inception_kernels(40) == [39, 19, 9]
    incep = create_model("inception1d")
    convs = [m for m in incep.stages[0].blocks[0].convs]
    assert [c.kernel_size[0] for c in convs] == [39, 19, 9] and incep.feature_dim == 256
    xres = create_model("xresnet1d101")
    blocks = [m for m in xres.modules() if isinstance(m, XBottleneck)]
    assert len(blocks) == 3 + 4 + 23 + 3
    assert all(float(b.last_bn.weight.detach().abs().sum()) == 0.0 for b in blocks)  # zero-init
    assert blocks[0].convs[1][0].kernel_size == (5,)
    strided = [b for b in blocks if b.convs[1][0].stride == (2,)]
    assert len(strided) == 3 and all(isinstance(b.shortcut[0], nn.AvgPool1d) for b in strided)
    assert xres.feature_dim == 512
    plain = create_model("xresnet1d50", zero_init_residual=False)
    assert all(float(b.last_bn.weight.detach().min()) == 1.0
               for b in plain.modules() if isinstance(b, XBottleneck))
    fcn = create_model("fcn_wang")
    assert [s[0].kernel_size[0] for s in fcn.stages] == [8, 5, 3]
    assert [s[0].out_channels for s in fcn.stages] == [128, 256, 128]


def test_checkpoint_round_trip_rebuilds_the_model(tmp_path) -> None:
    from ecgcore.checkpoint import Checkpoint, load_checkpoint, save_checkpoint

    model = create_model("lstm_bidir", n_leads=12, n_classes=3, hidden=8, head_hidden=[16])
    ckpt = Checkpoint(state_dict=model.state_dict(), model_name=model.name,
                      model_config=model.config, classes=["a", "b", "c"],
                      class_names=["a", "b", "c"], prep={})
    loaded = load_checkpoint(save_checkpoint(ckpt, tmp_path / "model.pt"))
    twin = create_model(loaded.model_name, **loaded.model_config)
    twin.load_state_dict(loaded.state_dict)
    x = torch.randn(2, 12, 250)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), twin.eval()(x))


def test_registry_lists_every_model_module_in_order() -> None:
    """The registry's module list is written by hand: a model module that offers
    ARCHITECTURES but is not listed would silently offer nothing."""
    import ast
    from pathlib import Path

    import ecgcore.models as models
    from ecgcore.models.registry import MODEL_MODULES, MODELS

    offering = {path.stem for path in Path(models.__file__).parent.glob("*.py")
                if any(isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "ARCHITECTURES"
                       for node in ast.parse(path.read_text()).body)}
    assert offering == {module.__name__.rsplit(".", 1)[1] for module in MODEL_MODULES}
    assert list(MODELS) == [a.name for module in MODEL_MODULES for a in module.ARCHITECTURES]
    assert list(MODELS)[:5] == ["resnet1d18", "resnet1d34", "resnet1d50", "resnet1d101", "lstm_nd"]
    assert all(MODELS[name].name == name for name in MODELS)
