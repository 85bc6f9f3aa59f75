import pytest

from lmpipe.lm.config import build_config
from lmpipe.lm.errors import ConfigError


def test_default_experiment_is_the_two_d2l_corpora_char_level():
    cfg = build_config()
    assert [c.name for c in cfg.corpora] == ["timemachine", "jaychou"]
    assert [cfg.tokenizers_for(c) for c in cfg.corpora] == [["char"], ["char"]]
    assert cfg.ngram.orders == [1, 2, 3, 4, 5]
    assert cfg.neural.architectures == ["rnn", "gru", "lstm"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"ngram": {"orders": [0, 1]}}, "ngram.orders: order 0 is out of range"),
        ({"neural": {"lr": -0.1}}, "neural.lr: Input should be greater than 0"),
        ({"neural": {"architectures": ["transformer"]}}, "unknown architecture 'transformer'"),
        ({"tokenizers": ["bpe9"]}, "unknown tokenizer 'bpe9'"),
        ({"corpora": ["nosuch"]}, "unknown corpus 'nosuch'"),
        ({"nueral": {}}, "nueral: unknown key (a typo?)"),
        ({"corpora": ["../x"]}, "is not a plain name"),
        ({"corpora": ["/etc/passwd"]}, "is not a plain name"),
    ],
)
def test_invalid_values_are_one_line_errors_naming_the_key(overrides, message):
    with pytest.raises(ConfigError) as e:
        build_config(overrides=overrides)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_toml_file_and_override_precedence(tmp_path):
    p = tmp_path / "exp.toml"
    p.write_text(
        'name = "mine"\ncorpora = ["ptb"]\n[neural]\nhidden = 32\narchitectures = ["gru"]\n'
    )
    cfg = build_config(p, overrides={"neural": {"hidden": 48}})
    assert (
        cfg.name == "mine"
        and cfg.neural.hidden == 48
        and cfg.tokenizers_for(cfg.corpora[0]) == ["whitespace"]
    )


def test_per_architecture_override():
    cfg = build_config(overrides={"neural": {"overrides": {"gru": {"hidden": 77}}}})
    assert cfg.neural.for_arch("gru")["hidden"] == 77
    assert cfg.neural.for_arch("lstm")["hidden"] == cfg.neural.hidden
