import pytest

from lmpipe.lm.config import PROFILES, build_config
from lmpipe.lm.errors import ConfigError
from lmpipe.lm.neural.config import TrainConfig


def test_default_experiment_is_the_two_d2l_corpora_char_level():
    cfg = build_config()
    assert [c.name for c in cfg.corpora] == ["timemachine", "jaychou"]
    assert [cfg.tokenizers_for(c) for c in cfg.corpora] == [["char"], ["char"]]
    assert cfg.ngram.orders == [1, 2, 3, 4, 5]
    assert cfg.neural.architectures == ["rnn-scratch", "gru", "lstm"]  # the seed's RNN too


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"ngram": {"orders": [0, 1]}}, "ngram.orders: order 0 is out of range"),
        ({"neural": {"lr": -0.1}}, "neural.lr: Input should be greater than 0"),
        ({"neural": {"architectures": ["transfomer"]}}, "unknown architecture 'transfomer'"),
        ({"tokenizers": ["bpe9"]}, "unknown tokenizer 'bpe9'"),
        ({"corpora": ["nosuch"]}, "unknown corpus 'nosuch'"),
        ({"nueral": {}}, "nueral: unknown key (a typo?)"),
        ({"corpora": ["../x"]}, "is not a plain name"),
        ({"corpora": ["/etc/passwd"]}, "is not a plain name"),
        ({"corpora": [{"name": "jaychou", "tokenizers": ["char", "jeiba"]}]}, "'jeiba'"),
        ({"corpora": [{"name": "jaychou", "tokenizers": ["char", "char"]}]}, "each tokenizer once"),
        (
            {"corpora": [{"name": "jaychou", "tokenizer": "char", "tokenizers": ["bpe"]}]},
            "give `tokenizer` (one) or `tokenizers` (a list), not both",
        ),
        ({"ngram": {"prune": [1e-8, 0]}}, "ngram.prune: threshold 0.0 must be > 0"),
        ({"vocab": {"bpe_vocab_size": 100}}, "vocab.bpe_vocab_size: Input should be greater"),
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


def test_tokenizers_per_corpus_then_experiment_then_registry():
    cfg = build_config(
        overrides={
            "tokenizers": ["char", "bpe"],
            "corpora": [{"name": "jaychou", "tokenizers": ["char", "jieba", "bpe"]}, "timemachine"],
        }
    )
    assert [cfg.tokenizers_for(c) for c in cfg.corpora] == [
        ["char", "jieba", "bpe"],
        ["char", "bpe"],
    ]
    cfg = build_config(overrides={"corpora": [{"name": "ptb", "tokenizer": "bpe"}, "ptb"]})
    assert [cfg.tokenizers_for(c) for c in cfg.corpora] == [["bpe"], ["whitespace"]]


def test_per_architecture_override():
    cfg = build_config(overrides={"neural": {"overrides": {"gru": {"hidden": 77}}}})
    assert cfg.neural.for_arch("gru")["hidden"] == 77
    assert cfg.neural.for_arch("lstm")["hidden"] == TrainConfig().hidden  # the default


def test_a_corpus_brings_its_own_vocabulary_and_training_settings():
    """The registry says what a corpus needs (data/corpora.toml): the Jay Chou lyrics, an open
    vocabulary of 44 k training characters, map their singletons to <unk> and train with
    heavier regularization. The config's own values and per-architecture overrides win."""
    from lmpipe.lm.corpus import load_registry

    reg = load_registry()
    assert reg["jaychou"].min_freq == 2 and reg["timemachine"].min_freq == 1
    cfg = build_config()
    jc, tm = cfg.corpus("jaychou").neural_defaults(), cfg.corpus("timemachine").neural_defaults()
    assert jc == reg["jaychou"].neural and tm == {}
    gru_jc, gru_tm = cfg.neural.for_arch("gru", jc), cfg.neural.for_arch("gru", tm)
    assert gru_jc["dropout"] == jc["dropout"] != gru_tm["dropout"]
    # the architecture's own recipe wins over the corpus's: d2l's RNN stays d2l's
    scratch = cfg.neural.for_arch("rnn-scratch", jc)
    assert scratch["tied"] is False and scratch["embed_dropout"] == 0.0
    # what the experiment's config says wins over both
    mine = build_config(overrides={"neural": {"dropout": 0.3, "overrides": {"gru": {"lr": 0.01}}}})
    assert mine.neural.for_arch("gru", jc)["dropout"] == 0.3
    assert mine.neural.for_arch("gru", jc)["lr"] == 0.01


def test_lmpipe_train_trains_exactly_the_default_experiments_model():
    from lmpipe.flows.cli.commands_train import train_config

    cfg = build_config()
    for corpus in ("timemachine", "jaychou"):
        own = cfg.corpus(corpus).neural_defaults()
        for arch in cfg.neural.architectures:
            assert train_config(arch, {}, corpus).as_dict() == cfg.neural.for_arch(arch, own)


def test_a_time_budget_alone_trains_until_the_budget():
    cfg = build_config(overrides={"neural": {"max_minutes": 2.0}})
    settings = cfg.neural.for_arch("gru")
    assert settings["epochs"] is None and settings["max_minutes"] == 2.0


def test_settings_that_only_fail_together_are_refused_when_the_config_is_read():
    with pytest.raises(ConfigError, match="tied weights need embed == hidden"):
        build_config(overrides={"neural": {"architectures": ["gru"], "embed": 64, "hidden": 128}})
    with pytest.raises(ConfigError, match="rnn-scratch cannot tie weights"):
        build_config(overrides={"neural": {"tied": True}})  # the section is every model's
    with pytest.raises(ConfigError, match="neural.overrides: .*'rnnn'|override for 'rnnn'"):
        build_config(overrides={"neural": {"overrides": {"rnnn": {"hidden": 3}}}})
    with pytest.raises(ConfigError, match="not a setting to search"):
        build_config(overrides={"neural": {"tune": {"search": {"hiden": [1, 2]}}}})


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_profile_gives_valid_settings_for_every_model_and_corpus(profile):
    """A profile is a config: each of its trainings must validate (tied weights and sizes)."""
    cfg = build_config(profile=profile)
    for corpus in cfg.corpora:
        for arch in cfg.neural.architectures:
            TrainConfig.for_arch(arch, cfg.neural.for_arch(arch, corpus.neural_defaults()))
