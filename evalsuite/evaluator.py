"""The evaluation loop: data in, per-item logs and one run record per protocol out.

One ``run`` may hold several protocols: images of a dataset are read and
embedded once and every protocol that still needs the image is served from
that embedding. Each (model, protocol) pair has its own run folder with an
append-only log, so an interrupted run resumes where it stopped and ends with
the same record as an uninterrupted one. The loop knows tasks only through
:class:`evalsuite.tasks.Task`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from .data.locate import DataSource, locate
from .data.readers import DatasetReader
from .distributed import DistContext, init_from_env, shutdown
from .errors import EvalsuiteError, InputError
from .models import build_model, get_spec
from .models.base import Runner
from .pipeline import batched, default_image_batch, default_workers, iter_images
from .protocols import OPTION_SCHEMA, Protocol, get_protocol
from .provenance import device_info, software
from .records import SCHEMA_VERSION, RunFolder, write_json_atomic
from .reference import paper_value
from .tasks import Task, TaskContext, task_class

EVALUATOR_BACKENDS = ("official", "faster")
PRECISIONS = ("fp32", "tf32", "bf16")
SKIP_BAD_IMAGE = "bad_image"


@dataclass
class RunConfig:
    """Everything a user chooses for one ``evalsuite run``."""

    protocols: list[str]
    model: str
    data: str = "real"  # "real" | "sample"
    data_root: Path | None = None
    ann: Path | None = None
    checkpoint: str | None = None  # None: the official file from the cache, for models that need weights
    trust_checkpoint: bool = False
    out: Path = Path("runs")
    limit: int | None = None
    seed: int = 0
    device: str = "cpu"
    overrides: dict[str, Any] = field(default_factory=dict)
    overwrite: bool = False
    progress: bool = True
    prompt_batch: int = 64
    boxes: Path | None = None  # detection file for the AP protocols
    skip_bad: bool = False
    evaluator: str = "official"  # AP backend: "official" | "faster"
    precision: str = "fp32"  # "fp32" (faithful default) | "tf32" | "bf16"
    workers: int | None = None  # image-decoding worker processes (None: by core count)
    image_batch: int | None = None  # images per encoder pass (None: 8 on CUDA, 1 elsewhere)


@dataclass
class RunOutcome:
    """What a finished protocol run produced."""

    protocol: Protocol
    folder: Path
    record: dict[str, Any]

    @property
    def record_path(self) -> Path:
        return self.folder / "record.json"


def resolve_protocols(names: list[str], overrides: dict[str, Any]) -> list[Protocol]:
    """Protocols by name, each with the overrides among its own options."""
    if len(set(names)) != len(names):
        raise InputError("a protocol is named twice")
    if "prompt" in overrides:
        raise InputError(
            "the prompt kind is what a protocol is; pick another protocol instead of --set prompt="
        )
    out, applied = [], set()
    for p in (get_protocol(n) for n in names):
        mine = {k: v for k, v in overrides.items() if k in p.options}
        applied |= set(mine)
        out.append(p.with_options(mine))
    if unused := set(overrides) - applied:
        raise InputError(
            f"option(s) {', '.join(sorted(unused))} apply to none of the protocols {', '.join(names)}",
            hint=f"options: {', '.join(OPTION_SCHEMA)}",
        )
    return out


@dataclass
class _ProtocolRun:
    """Live state of one protocol inside a run: its task, folder and finished images."""

    task: Task
    folder: RunFolder
    done: dict[int, dict]
    complete_at_start: bool = False
    seconds: float = 0.0

    @property
    def protocol(self) -> Protocol:
        return self.task.protocol


def _ids_sha256(ids: list[int]) -> str:
    return hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()


def _short_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:10]


def run(cfg: RunConfig) -> list[RunOutcome]:
    """Run every protocol of ``cfg`` and return their outcomes (records written to disk).

    Under ``torchrun`` every process calls this; images are sharded across the
    processes and process 0 writes the records (the others return an empty list).
    """
    if cfg.limit is not None and cfg.limit < 1:
        raise InputError("--limit must be at least 1")
    if cfg.evaluator not in EVALUATOR_BACKENDS:
        raise InputError(f"--evaluator must be one of {', '.join(EVALUATOR_BACKENDS)}")
    if cfg.precision not in PRECISIONS:
        raise InputError(f"--precision must be one of {', '.join(PRECISIONS)}")
    if cfg.image_batch is not None and cfg.image_batch < 1:
        raise InputError("--image-batch must be at least 1")
    protocols = resolve_protocols(cfg.protocols, cfg.overrides)
    families = sorted({p.dataset for p in protocols})
    if cfg.ann is not None and len(families) > 1:
        raise InputError(
            "--ann names one annotation file, but the protocols use both COCO and LVIS", hint="run them apart"
        )
    ap = [p for p in protocols if p.task == "ap"]
    if len(ap) > 1:
        raise InputError("--boxes names one detection file; run the AP protocols one at a time")
    if cfg.boxes is not None and not ap:
        raise InputError("--boxes is for the detector-box protocols (coco-vitdet, lvis-vitdet)")
    sources = {f: locate(f, cfg.data, cfg.data_root, cfg.ann) for f in families}  # fail fast on missing data
    dist_ctx, cfg.device = init_from_env(cfg.device)
    try:
        runner = _build_runner(cfg)
        for p in protocols:
            task_class(p).check_runner(p, runner)
        outcomes: dict[str, RunOutcome] = {}
        with precision_mode(cfg.precision, cfg.device):
            for family in families:
                group = [p for p in protocols if p.dataset == family]
                for o in _run_dataset(cfg, runner, sources[family], group, dist_ctx):
                    outcomes[o.protocol.name] = o
    finally:
        shutdown(dist_ctx)
    return [outcomes[p.name] for p in protocols if p.name in outcomes]


@contextlib.contextmanager
def precision_mode(precision: str, device: str):
    """fp32: the official arithmetic; tf32: TF32 matmuls/convolutions on CUDA; bf16: autocast to bfloat16."""
    dev = torch.device(device)
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = precision == "tf32"
        if precision == "bf16":
            with torch.autocast(device_type=dev.type, dtype=torch.bfloat16):
                yield
        else:
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _build_runner(cfg: RunConfig) -> Runner:
    """The model, with its official checkpoint from the cache unless one was given."""
    if cfg.checkpoint is None and get_spec(cfg.model).needs_weights:
        from .models.checkpoints import find_checkpoint

        cfg.checkpoint = str(find_checkpoint(cfg.model))
    return build_model(
        cfg.model, checkpoint=cfg.checkpoint, device=cfg.device, trust_checkpoint=cfg.trust_checkpoint
    )


def _fingerprint(cfg: RunConfig, runner: Runner, task: Task, source: DataSource, reader, ids: list[int]):
    """The settings that determine a protocol run's result: resume only continues an identical run."""
    return {
        "schema_version": SCHEMA_VERSION,
        "protocol": task.protocol.id,
        "options": task.protocol.options,
        "model": cfg.model,
        "checkpoint_sha256": runner.checkpoint_sha256,
        "precision": cfg.precision,
        "seed": cfg.seed,
        "dataset": source.name,
        "annotation_sha256": reader.annotation_sha256,
        "image_ids_sha256": _ids_sha256(ids),
        **task.fingerprint(),
    }


def _open_run(
    cfg: RunConfig, runner: Runner, source: DataSource, reader, ids, protocol: Protocol, dist_ctx: DistContext
) -> _ProtocolRun:
    ctx = TaskContext(
        reader=reader,
        image_ids=ids,
        seed=cfg.seed,
        prompt_batch=cfg.prompt_batch,
        boxes=cfg.boxes,
        skip_bad=cfg.skip_bad,
        evaluator_backend=cfg.evaluator,
    )
    task = task_class(protocol)(protocol, ctx)
    fp = _fingerprint(cfg, runner, task, source, reader, ids)
    path = Path(cfg.out) / cfg.model / protocol.name
    folder, error = None, None
    if dist_ctx.is_main:  # process 0 sets the folder up and folds earlier sessions' logs together
        try:
            folder = RunFolder(path, fp, task.log_name, overwrite=cfg.overwrite)
            folder.consolidate()
        except Exception as e:
            error = e
    dist_ctx.broadcast_error(error)
    if folder is None:
        folder = RunFolder(path, fp, task.log_name, rank=dist_ctx.rank, check_only=True)
    done, _ = folder.load_finished()
    return _ProtocolRun(task, folder, done, complete_at_start=all(i in done for i in ids))


def _run_dataset(
    cfg: RunConfig, runner: Runner, source: DataSource, protocols: list[Protocol], dist_ctx: DistContext
) -> list[RunOutcome]:
    reader = source.open()
    ids = reader.image_ids()[: cfg.limit] if cfg.limit else reader.image_ids()
    runs = [_open_run(cfg, runner, source, reader, ids, p, dist_ctx) for p in protocols]
    todo = dist_ctx.shard([i for i in ids if any(i not in r.done for r in runs)])
    on_cuda = torch.device(cfg.device).type == "cuda"
    if on_cuda:
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    workers = default_workers() if cfg.workers is None else cfg.workers
    image_batch = cfg.image_batch or default_image_batch(cfg.device)
    desc = f"{cfg.model} on {source.name}"
    if dist_ctx.active:
        desc += f" (process 0 of {dist_ctx.world_size})"
    show = cfg.progress and dist_ctx.is_main
    images = iter_images(reader, todo, workers, transform=runner.image_transform(), pin_memory=on_cuda)
    progress = tqdm(images, total=len(todo), desc=desc, unit="img", disable=not show)
    embedder = _Embedder(runner, image_batch, cfg.model)
    for batch in batched(progress, image_batch):
        readable = []
        for sample, image, cache in batch:
            if not isinstance(image, EvalsuiteError):
                readable.append((sample, image, cache))
            elif not cfg.skip_bad:
                raise image
            else:
                for r in runs:  # an unreadable image is skipped and counted, for every protocol
                    if sample.image_id not in r.done:
                        r.folder.append_image(
                            {"image_id": sample.image_id, "records": 0, "skipped": {SKIP_BAD_IMAGE: 1}}, []
                        )
        for sample, cache in embedder.embed(readable):  # the image set on the runner, in order
            for r in runs:  # one embedding serves every protocol of the run
                if sample.image_id in r.done:
                    continue
                t0 = time.perf_counter()
                records, stats = r.task.run_image(runner, cache)
                r.seconds += time.perf_counter() - t0
                row = {
                    "image_id": sample.image_id,
                    "records": len(records),
                    "skipped": dict(sorted(stats.items())),
                }
                r.folder.append_image(row, [rec.to_json() for rec in records])
    execution = {
        "wall_s": round(time.perf_counter() - started, 3),
        "images_this_session": len(todo),
        "world_size": dist_ctx.world_size,
        "torch_threads": torch.get_num_threads(),
        "decode_workers": workers,
        "image_batch": embedder.size,
        **({"image_batch_requested": image_batch} if embedder.size != image_batch else {}),
        **runner.execution_notes(),
        "peak_gpu_memory_bytes": torch.cuda.max_memory_allocated() if on_cuda else None,
    }
    dist_ctx.barrier()
    outcomes = []
    if dist_ctx.is_main:
        outcomes = [_finish(cfg, runner, source, reader, ids, r, execution) for r in runs]
    dist_ctx.barrier()
    return outcomes


class _Embedder:
    """Embeds images ``size`` at a time; on GPU out-of-memory, halves ``size`` for the rest of the run.

    A speed setting must not end a long run: a batch that does not fit is retried in halves (said on
    stderr, recorded in the run's ``execution``), down to one image, where the error is the user's to fix.
    """

    def __init__(self, runner: Runner, size: int, model: str) -> None:
        self.runner = runner
        self.size = size
        self.model = model

    def embed(self, items: list[tuple[Any, Any, Any]]) -> Iterator[tuple[Any, Any]]:
        """Yield (sample, cache) for each (sample, image, cache) with that image set on the runner."""
        start = 0
        while start < len(items):
            chunk = items[start : start + self.size]
            try:
                self.runner.set_images([image for _, image, _ in chunk])
            except torch.cuda.OutOfMemoryError:
                if self.size == 1:
                    raise EvalsuiteError(
                        f"{self.model}: the GPU ran out of memory embedding a single image",
                        hint="free the GPU of other work, or try --precision bf16",
                    ) from None
                self.size = max(1, self.size // 2)
                torch.cuda.empty_cache()
                tqdm.write(f"evalsuite: GPU out of memory: images per encoder pass lowered to {self.size}")
                continue
            for k, (sample, _, cache) in enumerate(chunk):
                self.runner.use_image(k)
                yield sample, cache
            start += len(chunk)


def _finish(
    cfg: RunConfig,
    runner: Runner,
    source: DataSource,
    reader: DatasetReader,
    ids: list[int],
    r: _ProtocolRun,
    execution: dict[str, Any],
) -> RunOutcome:
    """Fold every process's logs together, score them and write the run record (process 0)."""
    r.folder.consolidate()
    done, rows = r.folder.load_finished()
    if r.complete_at_start and r.folder.record_path.is_file():
        # nothing new: the existing record stands (re-running a finished command changes no file)
        return RunOutcome(r.protocol, r.folder.path, json.loads(r.folder.record_path.read_text()))
    if missing := [i for i in ids if i not in done]:
        raise EvalsuiteError(
            f"{r.folder.path}: {len(missing)} image(s) were not evaluated (first: {missing[0]})"
        )
    evaluator = r.task.new_evaluator()
    evaluator.process([r.task.record_type.from_json(row) for row in rows])
    skipped = r.task.initial_skips()
    for row in done.values():
        skipped.update(row.get("skipped", {}))
    result = evaluator.evaluate()
    for name, content in result.get("artifacts", {}).items():
        write_json_atomic(r.folder.path / name, content)
    metrics = {k: result["metrics"].get(k) for k in r.protocol.metrics}
    paper = {}
    for m in r.protocol.metrics:
        pv = paper_value(cfg.model, r.protocol.name, m)
        if pv is not None:
            paper[m] = {"value": pv.value, "source": pv.source, "row": pv.row}
    per_category = {
        str(k): {"name": reader.categories.get(k, {}).get("name"), **v}
        for k, v in result.get("per_category", {}).items()
    }
    record = {
        "schema_version": SCHEMA_VERSION,
        "run_id": f"{cfg.model}__{r.protocol.name}__{_short_hash(r.folder.config)}",
        "protocol": {
            "name": r.protocol.name,
            "version": r.protocol.version,
            "id": r.protocol.id,
            "task": r.protocol.task,
            "options": r.protocol.options,
            "options_hash": r.protocol.options_hash,
        },
        "dataset": {
            "name": source.name,
            "family": source.family,
            "annotation_file": str(source.ann_file),
            "annotation_sha256": reader.annotation_sha256,
            "image_ids_sha256": _ids_sha256(ids),
            "limit": cfg.limit,
        },
        **r.task.provenance(),
        "counts": {"images": len(ids), **result.get("counts", {}), "skipped": dict(sorted(skipped.items()))},
        "model": {
            "name": cfg.model,
            "checkpoint": cfg.checkpoint,
            "checkpoint_sha256": runner.checkpoint_sha256,
            "precision": cfg.precision,
        },
        "seed": cfg.seed,
        "metrics": metrics,
        "higher_is_better": dict.fromkeys(metrics, True),
        "per_category": per_category,
        "paper": paper,
        "software": software(),
        "environment": device_info(cfg.device),
        # how this session ran: differs between resumed or sharded runs of the same result
        "execution": {
            "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            **execution,
            "protocol_s_this_session": round(r.seconds, 3),
        },
        "files": {
            "log": r.task.log_name,
            "images": "images.jsonl",
            "config": "config.json",
            **{name: name for name in result.get("artifacts", {})},
        },
    }
    if "evaluator" in result:
        record["evaluator"] = result["evaluator"]
    r.folder.write_record(record)
    return RunOutcome(r.protocol, r.folder.path, record)
