"""The lm-eval model `reflectevo`: reflect-then-retry evaluation over any lm-eval model.

    lm_eval --model reflectevo \
        --model_args base=hf,pretrained=smollm2-135m-instruct,mode=oracle \
        --tasks reflectevo_bbh --batch_size 16 --device cpu

lm-eval builds every request up front and calls `generate_until` once with all of them. We run
the protocol in batched passes over the inner ("base") model, one `generate_until` call per pass:
trial 1 for every doc, then reflection where the mode asks for it, then the retry. Each request
is answered with one JSON trajectory (prompts, raw outputs, parsed answers, verdicts) that the
task's `process_results` scores and `--log_samples` keeps.

Our options (everything else in --model_args goes to the base model; `device` and `batch_size`
from the command line are forwarded to it):
  base=hf|vllm|local-chat-completions|<any registered lm-eval model>   (default hf)
  mode=oracle       reflect and retry only when trial 1 is wrong by the gold answer (default)
       intrinsic    always reflect and retry; feedback is "none"; gold is used only for scoring
       retry_only   retry when wrong, with the verdict only and no reflection (the baseline)
       single       trial 1 only
  instruction=ID    reflection instruction (`default`, an abc/legacy pool id, or pool:id); in intrinsic
                    mode `default` means `default:check`, which does not presume the attempt wrong
  one_stage=true    the reflector writes reflection + corrected solution in one reply
  reflector=MODEL   another model writes reflections (same `base` engine)
  reflector_peft=ADAPTER     a LoRA adapter on the base (or on `reflector`) writes reflections
  reflector_revision=REV     revision of that adapter (or of `reflector` when no adapter)
  peft=ADAPTER, peft_revision=REV   a LoRA adapter on the base model itself (e.g. an sft_qa one)
  merge_adapter=true         serve those adapters merged into the model's weights (made once, cached):
                             a plain model for the engine, where its LoRA path is slow (vLLM's CPU
                             build: about 4x); same function up to float rounding; recorded as such
  retry_by=base|reflector    who writes the retry (default base, the paper's Generator)
  max_gen_toks=N             trial 1 / retry token cap (default: the task's, 256)
  retry_max_gen_toks=N       the retry's own cap (default: max_gen_toks); a one-stage reply gets the
                             reflection cap plus this one. E.g. a retry_only row given the budget that a
                             reflective row spends after trial 1 (reflection cap + retry cap)
  reflection_max_gen_toks=N  reflection token cap (default 512)
  reflection_temperature=T, reflection_top_p=P   reflection sampling (default greedy)
  seed=N                     seed set before every pass (sampled reflections)
  chunk_size=N               run the protocol over N docs at a time (default: all at once, three passes)
  resume=DIR                 keep each finished chunk (and its passes' timings) in DIR; a rerun with
                             the same settings reuses them, so a killed run loses at most one chunk
                             (needs chunk_size)
  trial1_from=DIR            take trial 1 from another run's resume folder (same base model,
                             chunk_size and docs; e.g. a mode=single run), so rows that differ only
                             in mode or reflector share one trial 1 and skip that pass
  progress=true|false        a progress bar per pass on stderr (rank 0): pass, chunk, docs, ETA
                             (default true; hf and vllm report batch by batch, others per pass)
  allow_unisolated_code=true code tasks (reflectevo_mbpp): where no isolated sandbox can be built, run the
                             answers' programs unisolated, as this user (default: refuse); recorded
  config=FILE.yaml           a YAML file of these options (config=a.yaml:b.yaml: several, later
                             files win); the options given in --model_args override it
The model id `smollm2-135m-instruct` names the embedded model (see reflectevo.embedded_model); with
base hf or vllm it is the base model when pretrained= is not given.
Prompts are built from the doc with reflectevo_tasks.prompts and the base model's chat template;
lm-eval's rendered prompt (and --apply_chat_template / --system_instruction) is not used, while
--gen_kwargs reaches trial 1 and the retry. Do not combine with --use_cache (cached answers are
keyed by lm-eval's prompt, not by our options); resume= is the safe way to continue a run.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from lm_eval.api.model import LM

from reflectevo import launcher
from reflectevo.embedded_model import EMBEDDED_SHORT_NAME
from reflectevo.errors import UserError
from reflectevo.chunk_store import RecordStore, claim_folder, write_atomic
from reflectevo_tasks import answers as A
from reflectevo_tasks import code_scoring
from reflectevo_tasks import prompts as P
from reflectevo_tasks import protocol
from reflectevo_tasks.engine import ENGINES, Engine, EngineConfig, Sampling, build_lm, resolve_adapter
from reflectevo_tasks.instructions import Instruction, find_instruction
from reflectevo_tasks.lm_eval_tasks import utils as task_utils
from reflectevo_tasks.questions import Question

DEFAULT_TRIAL_TOKENS = 256
BASE_ADAPTER_OPTIONS = ("peft", "peft_revision")  # read into the base model's EngineConfig
PROG = "lm_eval --model reflectevo"
# A reply's generated tokens are counted by retokenising its decoded text, which can come back short of
# what the model generated: after a reply prefix the engine replaces the whitespace the model opened with
# by one space (two newline tokens then vanish into the next word), and tokens the model generated apart
# can merge. On the committed rows, replies cut off at the cap retokenise to cap - 3 ... cap + 9 and
# replies that stopped lie spread below (leaderboards/measured/cap_hits.json, near_cap), so the cap
# counts as reached within CAP_SLACK tokens (a reply stopping that close to it is counted too).
CAP_SLACK = 3


def reaches_cap(tokens: int, cap: int) -> bool:
    """Whether a reply of `tokens` retokenised tokens ran into its cap of `cap` new tokens."""
    return tokens >= cap - CAP_SLACK


def generated_part(reply: str, reply_prefix: str) -> str:
    """What the model generated of a stored reply: the text after the prefix we opened it with."""
    return reply[len(reply_prefix):] if reply_prefix and reply.startswith(reply_prefix) else reply


def generated_tokens(reply: str, reply_prefix: str, count_tokens) -> int:
    """The new tokens of a reply as counted against its cap: its generated part, retokenised by
    `count_tokens`; a blank reply is 0."""
    text = generated_part(reply, reply_prefix)
    return count_tokens(text) if text.strip() else 0


def _flag(value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("", "0", "false", "no", "off", "none"):
        return False
    raise UserError(f"reflectevo: expected true or false, got {value!r}")


@dataclass
class ModelArguments:
    """Our options in --model_args, typed by the parser every reflectevo command uses
    (reflectevo.settings); `config=FILE.yaml` gives a YAML layer of them that model_args override.
    The module's docstring says what each does."""

    base: str = field(default="hf", metadata={"help": "lm-eval model that answers: hf, vllm, local-chat-completions, ..."})
    mode: str = field(default="oracle", metadata={"help": "oracle, intrinsic, retry_only or single"})
    instruction: str = field(default="default", metadata={"help": "reflection instruction id"})
    one_stage: bool = field(default=False, metadata={"help": "reflection and corrected solution in one reply"})
    reflector: str | None = field(default=None, metadata={"help": "another model writes reflections"})
    reflector_peft: str | None = field(default=None, metadata={"help": "a LoRA adapter writes reflections"})
    reflector_revision: str | None = field(default=None, metadata={"help": "revision of that adapter (or reflector)"})
    merge_adapter: bool = field(default=False, metadata={"help": "serve adapters merged into the model's weights"})
    retry_by: str = field(default="base", metadata={"help": "who writes the retry: base or reflector"})
    max_gen_toks: int | None = field(default=None, metadata={"help": "trial 1 / retry token cap (default: the task's)"})
    retry_max_gen_toks: int | None = field(default=None, metadata={"help": "retry token cap (default: max_gen_toks)"})
    reflection_max_gen_toks: int = field(default=512, metadata={"help": "reflection token cap"})
    reflection_temperature: float = field(default=0.0, metadata={"help": "reflection sampling temperature"})
    reflection_top_p: float = field(default=1.0, metadata={"help": "reflection top-p"})
    seed: int | None = field(default=None, metadata={"help": "seed set before every pass"})
    chunk_size: int | None = field(default=None, metadata={"help": "docs per round of passes"})
    resume: str | None = field(default=None, metadata={"help": "folder keeping finished chunks (needs chunk_size)"})
    trial1_from: str | None = field(default=None, metadata={"help": "another run's resume folder to take trial 1 from"})
    progress: bool = field(default=True, metadata={"help": "a progress bar per pass on stderr"})
    allow_unisolated_code: bool = field(default=False, metadata={"help": "run code answers unisolated where no sandbox can be built"})

    def __post_init__(self):
        # spelling is not meaning: `mode=Oracle` is oracle
        self.mode = self.mode.strip().lower()
        self.retry_by = self.retry_by.strip().lower()
        for name, minimum in (("max_gen_toks", 1), ("retry_max_gen_toks", 1), ("reflection_max_gen_toks", 1),
                              ("reflection_temperature", 0.0),
                              ("reflection_top_p", 0.0), ("chunk_size", 1)):
            value = getattr(self, name)
            if value is not None and value < minimum:
                raise UserError(f"reflectevo: {name} must be at least {minimum}, got {value!r}")


# the options that say which models to build: from_engines gets its models built
ENGINE_OPTIONS = ("base", "reflector", "reflector_peft", "reflector_revision", "merge_adapter")
# `config` names the YAML layer; it is ours too, so it never reaches the base model
OUR_OPTIONS = tuple(f.name for f in fields(ModelArguments)) + ("config",)


def parse_model_args(model_args: dict) -> tuple[ModelArguments, dict]:
    """(our options, typed and layered, the rest of `model_args` for the base model)."""
    from reflectevo.settings import mapping_argv, parse

    ours = {k: v for k, v in model_args.items() if k in OUR_OPTIONS}
    rest = {k: v for k, v in model_args.items() if k not in OUR_OPTIONS}
    config = ours.pop("config", None)
    # several YAML layers as config=a.yaml:b.yaml (a comma would end the model_arg)
    files = [f for f in str(config).split(os.pathsep) if f] if config not in (None, "") else []
    argv = [a for f in files for a in ("--config", f)] + mapping_argv(ours)
    try:
        (args,) = parse([ModelArguments], argv, PROG, find_config=_config_file, label=lambda key: key).values
    except UserError as exc:
        raise UserError(f"reflectevo: {str(exc).removeprefix('reflectevo: ')}") from None
    return args, rest


def _config_file(name: str) -> Path:
    path = Path(name).expanduser()
    if not path.is_file():
        raise UserError(f"config={name}: no such file")
    return path


@dataclass(frozen=True)
class Options:
    """The protocol options of --model_args, checked before anything is loaded."""

    mode: str
    instruction: Instruction
    one_stage: bool
    retry_by: str
    max_gen_toks: int | None
    reflection: Sampling
    seed: int | None
    retry_max_gen_toks: int | None = None

    @classmethod
    def from_arguments(cls, args: ModelArguments, has_reflector: bool) -> "Options":
        reflection = Sampling(max_new_tokens=args.reflection_max_gen_toks, temperature=args.reflection_temperature,
                              top_p=args.reflection_top_p, stop=())
        try:  # the protocol's own checks of mode, one_stage and retry_by
            protocol.Settings(mode=args.mode, one_stage=args.one_stage, retry_by=args.retry_by,
                              reflection=reflection, retry_max_new_tokens=args.retry_max_gen_toks).check()
        except UserError as exc:
            raise UserError(f"reflectevo: {exc}") from None
        if args.retry_by == "reflector" and not has_reflector:
            raise UserError("reflectevo: retry_by=reflector needs reflector= or reflector_peft=")
        instruction = args.instruction
        if args.mode == "intrinsic" and instruction == "default":
            # no verdict is shown, so the default instruction must not presume the attempt wrong
            instruction = "default:check"
        return cls(mode=args.mode, instruction=find_instruction(instruction),  # UserError for an unknown id
                   one_stage=args.one_stage, retry_by=args.retry_by, max_gen_toks=args.max_gen_toks,
                   reflection=reflection, seed=args.seed, retry_max_gen_toks=args.retry_max_gen_toks)

    def settings(self) -> protocol.Settings:
        return protocol.Settings(mode=self.mode, one_stage=self.one_stage, retry_by=self.retry_by,
                                 reflection=self.reflection, retry_max_new_tokens=self.retry_max_gen_toks)

    def describe(self) -> dict:
        ins = self.instruction
        return {"mode": self.mode, "one_stage": self.one_stage, "retry_by": self.retry_by,
                "instruction": {"id": ins.id, "pool": ins.pool, "pool_version": ins.pool_version, "text": ins.text},
                "feedback": {"oracle": "gold verdict (correct/incorrect) gates reflection and retry",
                             "retry_only": "gold verdict gates the retry; no reflection",
                             "intrinsic": "none; every item is reflected on and retried",
                             "single": "none; trial 1 only"}[self.mode],
                "seed": self.seed,
                # only where set: the settings of earlier resume folders (compared whole) stay as they were
                **({"retry_max_gen_toks": self.retry_max_gen_toks} if self.retry_max_gen_toks is not None else {})}


def _identity(engine: Engine) -> dict:
    """What a stored chunk's model was: a merged adapter is another set of weights than the same
    adapter served by LoRA (float rounding), so their chunks are not mixed."""
    record = engine.describe()
    return {**{k: record[k] for k in ("model", "model_revision", "adapter", "adapter_revision")},
            **({"adapter_merged": True} if record.get("adapter_merged") else {})}


def _check_passthrough(base: str, model_args: dict) -> None:
    """Catch misspelt options of ours before they reach the base model as unknown kwargs."""
    for key in model_args:
        if key in BASE_ADAPTER_OPTIONS:
            continue
        close = difflib.get_close_matches(key, OUR_OPTIONS, n=1, cutoff=0.7)
        if close and key not in _inner_parameters(base):
            raise UserError(f"reflectevo: unknown option {key!r} (did you mean {close[0]}?); "
                            f"it would be passed to the {base} model")


def _inner_parameters(base: str) -> set[str]:
    """Keyword names the base model's class declares (e.g. `model` for chat-completion servers)."""
    import inspect

    import lm_eval.models  # noqa: F401
    from lm_eval.api.registry import get_model

    try:
        cls = get_model(base)
    except Exception:
        return set()
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is not None:
            try:
                names.update(inspect.signature(init).parameters)
            except (TypeError, ValueError):
                pass
    return names


class ReflectEvoLM(LM):
    """Wraps an lm-eval model and runs trial 1 -> reflection -> retry in batched passes."""

    def __init__(self, device=None, batch_size=None, max_batch_size=None, **model_args):
        super().__init__()
        _install_excepthook()
        # 1. everything that can be wrong with the input, before any model is loaded
        args, model_args = parse_model_args(model_args)
        base, reflector, reflector_peft, reflector_revision = args.base, args.reflector, args.reflector_peft, args.reflector_revision
        options = Options.from_arguments(args, has_reflector=bool(reflector or reflector_peft))
        show_progress = args.progress
        _check_passthrough(base, model_args)
        _check_bbh_dir()
        chunking = Chunking.parse(args.chunk_size, args.resume, args.trial1_from)
        base_cfg = self._base_config(base, device, batch_size, max_batch_size, model_args)
        if args.merge_adapter and not (base_cfg.peft or reflector_peft):
            raise UserError("reflectevo: merge_adapter=true needs an adapter to merge (peft= or reflector_peft=)")
        base_cfg = replace(base_cfg, merge_adapter=bool(args.merge_adapter and base_cfg.peft))
        reflector_cfg = None
        if reflector or reflector_peft:
            adapter, adapter_revision = None, None
            if reflector_peft:  # fetched now, so a missing adapter fails before any model loads
                adapter, _, adapter_revision = resolve_adapter(str(reflector_peft), reflector_revision, "reflector adapter")
            if reflector:  # another model; reflector_revision is its revision unless an adapter takes it
                model, revision = str(reflector), None if reflector_peft else reflector_revision
            else:  # the base model itself, with the adapter on top
                model, revision = base_cfg.model, base_cfg.revision
            reflector_cfg = EngineConfig(
                model=model, engine=base, revision=revision, peft=adapter, peft_revision=adapter_revision,
                merge_adapter=bool(args.merge_adapter and adapter),
                dtype=base_cfg.dtype, batch_size=base_cfg.batch_size, device=base_cfg.device,
                model_args=dict(base_cfg.model_args))
            if base in ENGINES:
                reflector_cfg.check()
        # 2. load (under a launcher of several CPU processes, they must first be told to be a group)
        launcher.use_cpu_if_no_accelerator()
        from reflectevo_tasks.engine import engine_pair

        # on vLLM, an adapter on the base model is served by the base's own engine
        base_engine, reflector_engine = engine_pair(base_cfg, reflector_cfg, build=_build)
        _join_data_parallel(base_engine.lm)
        self._setup(options, base_engine, reflector_engine, chunking, show_progress, args.allow_unisolated_code)

    @classmethod
    def from_engines(cls, base: Engine, reflector: Engine | None = None, **options) -> "ReflectEvoLM":
        """Wrap already-built engines (the Python API, benchmarks and tests)."""
        self = cls.__new__(cls)
        LM.__init__(self)
        # typed by the same parser as --model_args; the Python API has no progress bar unless asked
        args, unknown = parse_model_args({"progress": False, **options})
        engine_options = sorted(set(unknown) | (set(ENGINE_OPTIONS) & set(options)))
        if engine_options:  # the engines are built already: these would be silently ignored
            raise UserError(f"reflectevo: unknown option(s) {', '.join(engine_options)}")
        chunking = Chunking.parse(args.chunk_size, args.resume, args.trial1_from)
        self._setup(Options.from_arguments(args, has_reflector=reflector is not None), base, reflector, chunking,
                    args.progress, args.allow_unisolated_code)
        return self

    # ---------------------------------------------------------------- construction helpers
    @staticmethod
    def _base_config(base, device, batch_size, max_batch_size, model_args) -> EngineConfig:
        args = dict(model_args)
        if base in ("hf", "vllm") or base not in ENGINES:
            # hf and vllm answer with the embedded model unless told otherwise, as every reflectevo command does
            model = args.pop("pretrained", None) or (EMBEDDED_SHORT_NAME if base in ("hf", "vllm") else None)
            if not model:
                raise UserError(f"reflectevo: name the base model with pretrained=... in --model_args (base={base})")
        else:  # local-chat-completions names its model with model=
            model = args.get("model")
            if not model:
                raise UserError("reflectevo: name the served model with model=... in --model_args")
        if base == "hf" and device is None:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device is not None and base not in ("hf", "local-chat-completions"):
            args["device"] = device
        if max_batch_size is not None and base in ("hf", "vllm"):
            args["max_batch_size"] = max_batch_size
        return EngineConfig(model=str(model), engine=base, revision=args.pop("revision", None),
                            peft=args.pop("peft", None), peft_revision=args.pop("peft_revision", None),
                            dtype=args.pop("dtype", None),
                            batch_size=batch_size if batch_size is not None else EngineConfig.batch_size,
                            device=device, model_args=args)

    def _setup(self, options: Options, base: Engine, reflector: Engine | None, chunking: "Chunking",
               show_progress: bool = False, allow_unisolated_code: bool = False) -> None:
        self.options = options
        self.allow_unisolated_code = bool(allow_unisolated_code)
        self._code_sandbox: dict | None = None  # how code answers ran, once a code task was seen
        self.show_progress = show_progress
        self._where = ""  # the chunk being run, for the progress bar
        self.base = base
        # the rank is known once the inner model exists: each rank keeps its own chunks
        chunking = chunking.for_rank(self.rank, self.world_size)
        self.chunking = chunking
        self.reflector = reflector or base
        self.has_reflector = reflector is not None
        self.passes: list[dict] = []
        self._tasks: dict[str, dict] = {}
        # (task, question id) -> what happened to that doc: its group and subtask, the verdict codes
        # at each level, whether it got a second attempt. Everything the results block counts comes
        # from here, so ranks can be merged (and a doc lm-eval hands out twice counts once)
        self._docs: dict[tuple[str, str], dict] = {}
        self._samplings: dict[str, list] = defaultdict(list)
        self._ignored_gen_kwargs: set = set()
        from reflectevo.portable import portable_paths

        # written into every trajectory and into resume folders' settings, which may be committed:
        # adapters are named by paths relative to the working directory
        self.run_summary = portable_paths({
            "mode": options.mode, "instruction": options.instruction.id, "one_stage": options.one_stage,
            "retry_by": options.retry_by,
            "base": _identity(base),
            "reflector": _identity(reflector) if reflector is not None else "base",
            # only where asked for: every other run's trajectories and resume settings stay as they were
            **({code_scoring.FLAG: True} if allow_unisolated_code else {}),
        })
        self._next_chunk = 0
        self._reused = Counter()
        if chunking.resume:
            settings = {"protocol": options.describe(), "run": self.run_summary, "chunk_size": chunking.size}
            if options.mode != "single":
                # the trial-1 verdict decides which docs get a second attempt: chunks gated by another
                # scorer must not be reused (single has no gate; its stored replies are re-scored)
                settings["scoring_version"] = A.GATE_VERSION  # only a change of strict verdicts refuses it
            chunking.claim(settings)
        if chunking.trial1_from:
            chunking.check_trial1_source(self.run_summary["base"])

    # ---------------------------------------------------------------- delegation to the base model
    @property
    def inner(self):
        return self.base.lm

    @property
    def tokenizer(self):
        return getattr(self.inner, "tokenizer", None)

    @property
    def tokenizer_name(self) -> str:
        return self.inner.tokenizer_name

    def chat_template(self, chat_template: bool | str = False):
        return self.inner.chat_template(chat_template)

    def apply_chat_template(self, chat_history, add_generation_prompt=True):
        return self.inner.apply_chat_template(chat_history, add_generation_prompt=add_generation_prompt)

    @property
    def rank(self):
        return getattr(self.inner, "rank", 0)

    @property
    def world_size(self):
        return getattr(self.inner, "world_size", 1)

    @property
    def device(self):
        return getattr(self.inner, "device", None)

    def all_gather(self, tensor):
        return self.inner.all_gather(tensor)

    def gather_object(self, obj, dst=0):
        return self.inner.gather_object(obj, dst=dst)

    def barrier(self):
        return self.inner.barrier()

    @property
    def eot_token_id(self):
        return getattr(self.inner, "eot_token_id", None)

    @property
    def max_length(self):
        return getattr(self.inner, "max_length", None)

    # ---------------------------------------------------------------- requests lm-eval may send
    def loglikelihood(self, requests, disable_tqdm: bool = False):
        raise UserError("the reflectevo model runs generation tasks only (reflectevo_bbh*, reflectevo_math, "
                        "reflectevo_mbpp); "
                        "use the base model directly for log-likelihood tasks")

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        self.loglikelihood(requests)

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        items = [self._item(r) for r in requests]  # refuses foreign tasks before any generation
        with code_scoring.allowing_unisolated(self.allow_unisolated_code):
            if any(it.q.kind == A.CODE for it in items):  # a machine that cannot run code refuses now
                self._code_sandbox = code_scoring.check_sandbox("lm_eval --model reflectevo")
            return self._generate(items)

    def _generate(self, items: list["_Item"]) -> list[str]:
        size = self.chunking.size or max(len(items), 1)
        chunks = -(-len(items) // size)
        out: list[str] = []
        for start in range(0, len(items), size):
            chunk, number = items[start:start + size], self._next_chunk
            self._next_chunk += 1
            self._where = f"chunk {start // size + 1}/{chunks}" if chunks > 1 else ""
            keys = [_key(it) for it in chunk]
            stored = self.chunking.load(number, keys)
            if stored is not None:
                _run_code_at_once(chunk, stored)
                for it, text in zip(chunk, stored):
                    self._count_stored(it, text)
                self._reused.update(chunks=1, docs=len(chunk))
                # the timings of the run that generated the chunk, so a resumed run still reports them
                self.passes += [{**p, "chunk": number, "reused": True} for p in self.chunking.stored_passes(number)]
                out += stored
                continue
            shared = self.chunking.shared(number, keys)
            if shared is not None:
                self._reused.update(trial1_docs=len(chunk))
            first = len(self.passes)
            texts = self._reflect_then_retry(chunk, shared)
            for p in self.passes[first:]:
                p["chunk"] = number
            self.chunking.save(number, keys, texts, self.passes[first:])
            out += texts
        self._merge_ranks()
        return out

    def _reflect_then_retry(self, items: list["_Item"], shared: list[str] | None = None) -> list[str]:
        """The protocol (reflectevo_tasks.protocol) over some docs: one JSON trajectory per doc.
        `shared`: another run's trajectories of the same docs, whose trial 1 is taken instead of pass 1."""
        proto_items = [protocol.Item(question=it.q, sampling=it.sampling, shots=it.shots,
                                     instructions=(self.options.instruction,)) for it in items]
        first = None
        if shared is not None:
            first = [json.loads(text)["turns"][0] for text in shared]
            for it, turn in zip(proto_items, first):
                if turn["messages"] != P.trial_prompt(it.question, it.shots).as_list():
                    raise UserError(f"reflectevo: trial1_from={self.chunking.trial1_from} holds another trial-1 "
                                    "prompt for a doc of this run (other prompts or shots)")
        runs = protocol.run(proto_items, self.base, self.reflector if self.has_reflector else None,
                            self.options.settings(), trial1=[t["output"] for t in first] if first else None,
                            run_pass=self._pass)
        # score everything for the record (process_results re-scores the same texts); code items'
        # second attempts all at once, in parallel (trial 1 was scored so in the gated modes)
        A.score_many((a.retry, r.item.question.answer, r.item.question.spec) for r in runs for a in r.attempts
                     if r.item.question.kind == A.CODE)
        out = []
        for i, (it, r) in enumerate(zip(items, runs)):
            t1 = r.trial1.output
            turns = [first[i] if first else self._turn(r.trial1)]
            attempt = r.attempts[0] if r.attempts else None
            if attempt is not None:
                turns += [self._turn(t) for t in attempt.turns]
            trajectory = {
                "schema": task_utils.TRAJECTORY_SCHEMA, "id": it.q.id, "task": it.task, "run": self.run_summary,
                "turns": turns, "trial1": {"reply": t1, **_verdicts(t1, it.q)},
                "feedback": None if not r.selected else ("incorrect" if r.feedback else "none"),
                # code items: the first failing test the second attempt was shown
                **({"feedback_text": r.feedback_text} if r.feedback_text is not None else {}),
                "reflection": attempt.reflection if attempt is not None else None,
                "trial2": None,
            }
            if attempt is not None:
                trajectory["trial2"] = {"from": "one_stage" if self.options.one_stage else "retry",
                                        "reply": attempt.retry, **_verdicts(attempt.retry, it.q)}
            elif self.options.mode != "single":  # a right trial 1 stands as trial 2
                trajectory["trial2"] = {"from": "trial1", "reply": None, **_verdicts(t1, it.q)}
            text = json.dumps(trajectory, ensure_ascii=False)
            self._count_stored(it, text)
            out.append(text)
        return out

    # ---------------------------------------------------------------- pieces of a run
    def _item(self, request) -> "_Item":
        doc = getattr(request, "doc", None)
        task = getattr(request, "task_name", None) or "?"
        if not task_utils.is_task_doc(doc):
            raise UserError(f"the reflectevo model runs reflectevo_bbh*, reflectevo_math and reflectevo_mbpp tasks "
                            f"only; task {task!r} gives docs "
                            "without the fields it needs (subtask, index, input, target)")
        gen_kwargs = request.args[1] if len(request.args) > 1 else {}
        q = task_utils.question(doc)
        info = self._tasks.setdefault(task, {"docs": 0, "dataset": doc.get("dataset"),
                                             "dataset_revision": doc.get("dataset_revision"),
                                             "dataset_location": doc.get("dataset_location"),
                                             "fewshot": bool(doc.get("fewshot"))})
        info["docs"] += 1
        return _Item(task=task, doc=doc, q=q, shots=task_utils.exemplars(doc), sampling=self._trial_sampling(gen_kwargs))

    def _trial_sampling(self, gen_kwargs) -> Sampling:
        kw = dict(gen_kwargs or {})
        until = kw.pop("until", None) or []
        until = [until] if isinstance(until, str) else list(until)
        task_max = kw.pop("max_gen_toks", None)
        do_sample = _flag(kw.pop("do_sample", False))
        temperature = float(kw.pop("temperature", 0.0) or 0.0)
        temperature = temperature if do_sample else 0.0
        top_p = float(kw.pop("top_p", 1.0) or 1.0)
        self._ignored_gen_kwargs.update(kw)
        return Sampling(max_new_tokens=int(self.options.max_gen_toks or task_max or DEFAULT_TRIAL_TOKENS),
                        temperature=temperature, top_p=top_p, stop=tuple(until))

    def _pass(self, turn: str, engine: Engine, prompts, sampling) -> list[str]:
        """One batched pass over an inner model (one generate_until call per distinct sampling)."""
        calls, start = engine.calls, time.perf_counter()
        bar = self._progress_bar(turn, len(prompts))
        try:
            outs = engine.generate(prompts, sampling, seed=self.options.seed, progress=bar.update if bar else None)
        finally:
            if bar is not None:
                bar.close()
        seconds = time.perf_counter() - start
        generated = prompt_tokens = cap_hits = 0
        caps = [sampling] * len(prompts) if isinstance(sampling, Sampling) else list(sampling)
        for p, out, s in zip(prompts, outs, caps):
            n = generated_tokens(out, p.reply_prefix, engine.count_tokens)
            generated += n
            cap_hits += reaches_cap(n, s.max_new_tokens)  # within CAP_SLACK: count_tokens retokenises
            prompt_tokens += engine.count_tokens(engine.render(p))
        samplings = [sampling] if isinstance(sampling, Sampling) else list(dict.fromkeys(sampling))
        for s in samplings:
            if s.to_dict() not in self._samplings[turn]:
                self._samplings[turn].append(s.to_dict())
        self.passes.append({"turn": turn, "model": "reflector" if engine is not self.base else "base",
                            "requests": len(prompts), "inner_calls": engine.calls - calls,
                            "prompt_tokens": prompt_tokens, "generated_tokens": generated,
                            "cap_hits": cap_hits, "cap_slack": CAP_SLACK,
                            "seconds": round(seconds, 3)})
        return outs

    def _progress_bar(self, turn: str, total: int):
        """lm-eval prints nothing while our passes run (we call the inner model without its own
        bar, which would not say which pass it is); one bar per pass on rank 0 instead."""
        if not self.show_progress or self.rank != 0 or total == 0:
            return None
        from tqdm import tqdm

        where = f" ({self._where})" if self._where else ""
        return tqdm(total=total, desc=f"reflectevo {turn}{where}", unit="doc", leave=True)

    @staticmethod
    def _turn(turn: protocol.Turn) -> dict:
        return {"turn": turn.name, "model": turn.by, "messages": turn.prompt.as_list(),
                "reply_prefix": turn.prompt.reply_prefix, "sampling": turn.sampling.to_dict(), "output": turn.output}

    def _count_stored(self, item: "_Item", text: str) -> None:
        """Record a trajectory (generated now, or reused from a stored chunk) from its texts alone,
        with the current scorer at every level: one code per attempt (1 right, 0 wrong, n none)."""
        t = json.loads(text)
        t2 = t.get("trial2")
        retried = t2 is not None and t2.get("reply") is not None
        codes = {}
        for level in A.LEVELS:
            v1 = A.score(t["trial1"]["reply"], item.q.answer, item.q.spec, level)
            v2 = None if t2 is None else A.score(t2["reply"], item.q.answer, item.q.spec, level) if retried else v1
            codes[level] = _code(v1) + ("" if v2 is None else _code(v2))
        self._docs[(item.task, item.q.id)] = {"group": item.doc.get("group") or item.task, "subtask": item.q.source,
                                              "codes": codes, "retried": retried}

    def _merge_ranks(self) -> None:
        """Under data parallelism every rank ran its share of the docs; rank 0 writes the results
        block, so it collects the others' records (every rank must call this, at the same point)."""
        if self.world_size <= 1:
            return
        mine = {"docs": list(self._docs.items()), "tasks": self._tasks, "passes": self.passes,
                "reused": dict(self._reused), "rank": self.rank}
        parts = self.inner.gather_object(mine, dst=0)
        if self.rank != 0:
            return
        for part in parts:
            if part["rank"] == 0:
                continue
            self._docs.update({tuple(k): v for k, v in part["docs"]})
            for task, info in part["tasks"].items():
                self._tasks.setdefault(task, {**info, "docs": 0})
            self.passes += [{**p, "rank": part["rank"]} for p in part["passes"]]
            self._reused.update(part["reused"])
        for task, info in self._tasks.items():  # every doc once, however lm-eval padded the ranks
            info["docs"] = sum(1 for t, _ in self._docs if t == task)

    def _pooled_counts(self) -> dict[str, dict[str, Counter]]:
        """level -> group -> counts, from the per-doc codes."""
        out: dict[str, dict[str, Counter]] = {level: defaultdict(Counter) for level in A.LEVELS}
        for doc in self._docs.values():
            for level, code in doc["codes"].items():
                first, second = code[0], code[1:] or None
                c = out[level][doc["group"]]
                c["docs"] += 1
                c["t1_correct"] += first == "1"
                c["t1_no_answer"] += first == "n"
                if second is not None:
                    c["t2_correct"] += second == "1"
                    c["t2_no_answer"] += second == "n"
                    c["wrong_to_right"] += first != "1" and second == "1"
                    c["no_answer_to_right"] += first == "n" and second == "1"
                    c["t1_wrong_readable"] += first == "0"
                    c["right_to_wrong"] += first == "1" and second != "1"
        return out

    def _outcomes(self, level: str) -> dict:
        """task -> doc id -> codes (so that two runs on the same items compare item by item)."""
        out: dict = defaultdict(dict)
        for (task, qid), doc in self._docs.items():
            out[task][qid] = doc["codes"][level]
        return _sorted_outcomes(out)

    def _second_attempts(self) -> dict:
        out: dict = defaultdict(list)
        for (task, qid), doc in self._docs.items():
            if doc["retried"]:
                out[task].append(qid)
        return {task: sorted(ids) for task, ids in sorted(out.items())}

    # ---------------------------------------------------------------- provenance
    def pooled(self) -> dict:
        """group -> level -> pooled counts and rates. A rate the protocol cannot produce is None:
        no break rate where a right trial 1 is never retried (oracle, retry_only)."""
        out: dict = {}
        gated = self.options.mode in protocol.GATED
        counts = self._pooled_counts()
        subtasks = defaultdict(set)
        for doc in self._docs.values():
            subtasks[doc["group"]].add(doc["subtask"])
        for level in A.LEVELS:
            for group, c in sorted(counts[level].items()):
                n, right1 = c["docs"], c["t1_correct"]
                row = {"docs": n, "subtasks": len(subtasks[group]), "acc_t1": right1 / n if n else None,
                       "no_answer_t1": c["t1_no_answer"] / n if n else None, "t1_correct": right1,
                       "t1_no_answer": c["t1_no_answer"]}
                if self.options.mode != "single" and n:
                    readable, none = c["t1_wrong_readable"], c["t1_no_answer"]
                    fixed_none = c["no_answer_to_right"]
                    row.update(acc_t2=c["t2_correct"] / n, delta=(c["t2_correct"] - right1) / n,
                               no_answer_t2=c["t2_no_answer"] / n, t2_correct=c["t2_correct"],
                               t2_no_answer=c["t2_no_answer"],
                               fix_rate=c["wrong_to_right"] / (n - right1) if n > right1 else None,
                               fix_rate_readable=(c["wrong_to_right"] - fixed_none) / readable if readable else None,
                               fix_rate_no_answer=fixed_none / none if none else None,
                               break_rate=None if gated else (c["right_to_wrong"] / right1 if right1 else None),
                               wrong_to_right=c["wrong_to_right"], no_answer_to_right=fixed_none,
                               right_to_wrong=None if gated else c["right_to_wrong"])
                out.setdefault(group, {})[level] = row
        return out

    def get_model_info(self) -> dict:
        from reflectevo.portable import portable_paths
        from reflectevo_tasks.provenance import package_versions

        info: dict = {}
        try:
            info.update(self.inner.get_model_info())
        except Exception:  # the inner model may have none, or fail to reach the Hub
            pass
        base = self.base.describe()
        if base.get("model_revision"):
            info["model_revision"] = base["model_revision"]
        template = None
        try:
            template = self.inner.chat_template(True)
        except Exception:
            pass
        info["reflectevo"] = portable_paths({
            "protocol": self.options.describe(),
            "base": {**base, "chat_template_sha256": hashlib.sha256(template.encode()).hexdigest() if template else None},
            "reflector": self.reflector.describe() if self.has_reflector else "same as base",
            "generation": dict(self._samplings),
            "ignored_task_gen_kwargs": sorted(self._ignored_gen_kwargs),
            "datasets": self._tasks,
            "samples": len(self._docs),
            "passes": self.passes,
            "chunking": {"chunk_size": self.chunking.size, "resume": self.chunking.resume,
                         "reused_chunks": self._reused["chunks"], "reused_docs": self._reused["docs"],
                         "trial1_from": self.chunking.trial1_from, "trial1_shared_docs": self._reused["trial1_docs"]},
            "scoring": {"headline": A.HEADLINE, "levels": list(A.LEVELS), "version": A.SCORING_VERSION,
                        "codes": {"1": "correct", "0": "wrong (a readable answer)", "n": "no answer"}},
            "pooled": self.pooled(),
            **({"code_sandbox": self._code_sandbox} if self._code_sandbox else {}),
            # task -> doc id -> one code per attempt (trial 1, then trial 2 when there is one), at the
            # headline level and at the flexible one
            "outcomes": self._outcomes(A.HEADLINE),
            "outcomes_flexible": self._outcomes(A.FLEXIBLE),
            # task -> the doc ids that got a second attempt (a reflection and/or a retry)
            "second_attempt": self._second_attempts(),
            "versions": package_versions(),
        })
        return info


@dataclass(frozen=True)
class _Item:
    task: str
    doc: dict
    q: Question
    shots: tuple
    sampling: Sampling


def _key(item: _Item) -> str:
    """What a stored trajectory answers: the doc and the trial sampling lm-eval asked for."""
    return json.dumps([item.task, item.q.id, item.sampling.to_dict()], sort_keys=True)


@dataclass(frozen=True)
class Chunking:
    """chunk_size / resume: docs per round of passes, and where finished rounds are kept.

    A chunk is a run of consecutive requests in lm-eval's (deterministic) order, so a rerun cuts the
    same chunks; a stored chunk is reused only when it holds exactly the same docs."""

    size: int | None
    resume: str | None
    trial1_from: str | None = None

    @classmethod
    def parse(cls, chunk_size=None, resume=None, trial1_from=None) -> "Chunking":
        size = chunk_size or None  # typed and checked (at least 1) by parse_model_args
        resume = str(resume) if resume not in (None, "") else None
        trial1_from = str(trial1_from) if trial1_from not in (None, "") else None
        for name, folder in (("resume", resume), ("trial1_from", trial1_from)):
            if folder and not size:
                raise UserError(f"reflectevo: {name}=DIR needs chunk_size=N (docs per stored chunk)")
            if folder and os.path.exists(folder) and not os.path.isdir(folder):
                raise UserError(f"reflectevo: {name}={folder} is a file, not a folder")
        if trial1_from and not (os.path.isfile(os.path.join(trial1_from, "settings.json")) or _rank_folders(trial1_from)):
            raise UserError(f"reflectevo: trial1_from={trial1_from} is not a resume folder (no settings.json)")
        if trial1_from and resume and os.path.abspath(trial1_from) == os.path.abspath(resume):
            raise UserError("reflectevo: trial1_from and resume name the same folder")
        return cls(size, os.path.abspath(resume) if resume else None,
                   os.path.abspath(trial1_from) if trial1_from else None)

    def for_rank(self, rank, world_size) -> "Chunking":
        """Under data parallelism each rank cuts its own share of the requests into chunks numbered
        from 0, so each keeps them in `<resume>/rank-<r>-of-<n>/` (and reads trial 1 from the same
        subfolder of trial1_from). A single process keeps the folder itself, so folders written by
        one process resume as before."""
        rank, world_size = int(rank or 0), int(world_size or 1)
        if world_size <= 1:
            if self.trial1_from and not os.path.isfile(os.path.join(self.trial1_from, "settings.json")):
                raise UserError(f"reflectevo: trial1_from={self.trial1_from} was run with several processes "
                                f"({', '.join(_rank_folders(self.trial1_from))}); this run has one")
            return self
        sub = _rank_folder(rank, world_size)
        trial1_from = os.path.join(self.trial1_from, sub) if self.trial1_from else None
        if trial1_from and not os.path.isfile(os.path.join(trial1_from, "settings.json")):
            raise UserError(f"reflectevo: trial1_from={self.trial1_from} has no {sub}/ resume folder "
                            "(it was run with another number of processes)")
        return replace(self, resume=os.path.join(self.resume, sub) if self.resume else None, trial1_from=trial1_from)

    def check_trial1_source(self, base: dict) -> None:
        """Trial 1 is shared only between runs of the same base model (and adapter) and chunking."""
        path = Path(self.trial1_from) / "settings.json"
        other = json.loads(path.read_text(encoding="utf-8"))
        if other.get("chunk_size") != self.size:
            raise UserError(f"reflectevo: {path}: chunk_size {other.get('chunk_size')} there, {self.size} here")
        if (other.get("run") or {}).get("base") != json.loads(json.dumps(base)):
            raise UserError(f"reflectevo: {path}: its trial 1 came from another base model or adapter "
                            f"({(other.get('run') or {}).get('base')})")

    def claim(self, settings: dict) -> None:
        claim_folder(Path(self.resume) / "settings.json", settings, "a reflectevo run", "resume into a new folder")

    def load(self, number: int, keys: list[str]) -> list[str] | None:
        """This run's stored chunk `number`, if it was finished before."""
        return self._read(self.resume, number, keys)

    def shared(self, number: int, keys: list[str]) -> list[str] | None:
        """The trial1_from run's chunk `number`, if that run has finished it."""
        return self._read(self.trial1_from, number, keys)

    def _read(self, folder: str | None, number: int, keys: list[str]) -> list[str] | None:
        if not folder:
            return None
        store = RecordStore(folder)
        records = store.read_chunk(number)
        if records is None:
            return None
        if [r.get("key") for r in records] != keys:
            raise UserError(f"reflectevo: {store.chunk_path(number)} holds other docs than this run's chunk {number} "
                            "(different tasks, --limit or order); use a new folder")
        return [r["trajectory"] for r in records]

    def stored_passes(self, number: int) -> list[dict]:
        """The passes that generated stored chunk `number` (none for chunks stored before 2026-11-26)."""
        path = self._passes_path(number)
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []

    def save(self, number: int, keys: list[str], texts: list[str], passes: list[dict]) -> None:
        if self.resume:
            # timings first: a chunk file on disk then always has its timings beside it
            write_atomic(self._passes_path(number), [json.dumps(passes)])
            RecordStore(self.resume).write_chunk(number, [{"key": k, "trajectory": t} for k, t in zip(keys, texts)])

    def _passes_path(self, number: int) -> Path:
        return Path(self.resume) / "passes" / f"chunk-{number:06d}.json"


def _rank_folder(rank: int, world_size: int) -> str:
    return f"rank-{rank}-of-{world_size}"


def _rank_folders(folder: str) -> list[str]:
    """The per-rank resume folders a multi-process run left in `folder`."""
    return sorted(p.name for p in Path(folder).glob("rank-*-of-*") if (p / "settings.json").is_file())


def _verdict(v) -> dict:
    return {"extracted": v.extracted, "gold": v.gold, "verdict": v.outcome, "method": v.method, "refusal": v.refusal}


def _verdicts(reply: str, q: Question) -> dict:
    """The headline verdict's fields, and every other level's under its own name (for the record;
    counting re-scores the texts)."""
    out = _verdict(A.score(reply, q.answer, q.spec))
    for level in A.LEVELS:
        if level != A.HEADLINE:
            out[level] = _verdict(A.score(reply, q.answer, q.spec, level))
    return out


def _run_code_at_once(items: list[_Item], texts: list[str]) -> None:
    """The programs of stored code trajectories, run together before they are counted one by one."""
    replies = []
    for it, text in zip(items, texts):
        if it.q.kind == A.CODE:
            t = json.loads(text)
            replies += [(t["trial1"]["reply"], it.q.answer, it.q.spec)]
            if (t.get("trial2") or {}).get("reply") is not None:
                replies.append((t["trial2"]["reply"], it.q.answer, it.q.spec))
    A.score_many(replies)


def _code(v) -> str:
    return "1" if v.correct else "n" if v.outcome == A.NO_ANSWER else "0"


def _sorted_outcomes(outcomes: dict) -> dict:
    return {task: dict(sorted(docs.items())) for task, docs in sorted(outcomes.items())}


def _build(cfg: EngineConfig):
    if cfg.engine in ENGINES:
        return build_lm(cfg)
    # any other registered lm-eval model: pass the arguments through as they are
    import lm_eval.models  # noqa: F401
    from lm_eval.api.registry import get_model

    from reflectevo.embedded_model import resolve_model

    try:
        cls = get_model(cfg.engine)
    except ValueError as exc:
        raise UserError(f"reflectevo: unknown base {cfg.engine!r}: {exc}") from None
    args = dict(cfg.model_args, pretrained=resolve_model(cfg.model), batch_size=cfg.batch_size)
    for key in ("revision", "dtype", "peft"):
        if getattr(cfg, key):
            args[key] = getattr(cfg, key)
    return cls(**args)


def _join_data_parallel(lm):
    """lm-eval's hf model joins accelerate's processes only when it counts GPUs; on CPU each one
    would call itself rank 0 of 1 and evaluate every doc. Give it the process group instead."""
    if getattr(lm, "world_size", 1) > 1 or launcher.world_size() <= 1 or not hasattr(lm, "_world_size"):
        return lm
    from accelerate import Accelerator

    accelerator = Accelerator()
    if accelerator.num_processes > 1:
        lm.accelerator, lm._rank, lm._world_size = accelerator, accelerator.process_index, accelerator.num_processes
    return lm


def _check_bbh_dir() -> None:
    from reflectevo_tasks import bbh

    bbh.data_dir()  # UserError now, rather than after the model has loaded


def _install_excepthook() -> None:
    from harness_plugins.lm_eval_hook import install_excepthook

    install_excepthook()
