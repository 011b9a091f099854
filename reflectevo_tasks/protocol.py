"""Reflect-then-retry, defined once: trial 1, the verdict, a reflection, a retry.

Generation (`reflectevo_gen.pipeline`) and evaluation (the lm-eval model in `harness_plugins`) both
run the protocol here, in batched passes over a whole list of items: every trial 1 in one pass, then
every reflection, then every retry. The mode decides which items get a second attempt and what they
are told:

  single      trial 1 only
  oracle      reflect and retry where trial 1 is not correct by the gold answer (strict level)
  retry_only  retry where trial 1 is not correct, shown the verdict and no reflection (the baseline)
  intrinsic   reflect on and retry every item, shown no verdict
  one_stage   (with oracle or intrinsic) one reply holds the reflection and the corrected solution

Where the verdict is shown, a code item's comes with what running its program said (the first failing
test and its error, `Verdict.feedback`): an environment's feedback, as the paper's MBPP setting gives it.

An item is reflected on once per instruction and sample (generation asks for several to build
preference pairs; evaluation for one); every reflection gets its own retry, built on trial 1.
The callers keep what is theirs: how a pass is timed, seeded and reported (`run_pass`), and what
record or trajectory is written from the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

from reflectevo.errors import UserError
from reflectevo_tasks import answers as A
from reflectevo_tasks import prompts as P
from reflectevo_tasks.engine import GREEDY, Engine, Sampling
from reflectevo_tasks.instructions import Instruction
from reflectevo_tasks.questions import Question

MODES = ("oracle", "intrinsic", "retry_only", "single")
RETRY_BY = ("base", "reflector")
TURNS = ("trial1", "reflection", "retry", "one_stage")


@dataclass(frozen=True)
class Settings:
    """How the second attempt is made (the instructions come with each item)."""

    mode: str = "oracle"
    one_stage: bool = False
    retry_by: str = "base"  # who writes the retry: the base model (the paper's generator) or the reflector
    reflection: Sampling = Sampling(max_new_tokens=512)
    samples: int = 1  # reflections per instruction
    # the retry's own token cap (None: the trial-1 cap); a one-stage reply gets the reflection cap plus
    # this one. Lets a retry_only row be given the budget a reflective row spends after trial 1.
    retry_max_new_tokens: int | None = None

    def check(self) -> None:
        if self.mode not in MODES:
            raise UserError(f"unknown mode {self.mode!r}; expected one of {', '.join(MODES)}")
        if self.one_stage and self.mode not in ("oracle", "intrinsic"):
            raise UserError(f"one_stage=true needs mode oracle or intrinsic, not {self.mode}")
        if self.retry_by not in RETRY_BY:
            raise UserError(f"retry_by must be base or reflector, not {self.retry_by!r}")
        if self.samples < 1:
            raise UserError(f"samples (reflections per instruction) must be at least 1, got {self.samples}")
        if self.retry_max_new_tokens is not None:
            if self.retry_max_new_tokens < 1:
                raise UserError(f"the retry token cap must be at least 1, got {self.retry_max_new_tokens}")
            if self.mode == "single":
                raise UserError("a retry token cap needs a mode that retries (mode single has no retry)")

    def retry_sampling(self, trial: Sampling) -> Sampling:
        """The retry's sampling: trial 1's (stop sequences, temperature) with the retry cap, if one is set."""
        if self.retry_max_new_tokens is None:
            return trial
        return replace(trial, max_new_tokens=self.retry_max_new_tokens)


@dataclass(frozen=True)
class Item:
    """One question as the protocol sees it."""

    question: Question
    sampling: Sampling = GREEDY  # trial 1 and the retry
    shots: tuple[tuple[str, str], ...] = ()  # few-shot exemplars for trial 1 and the retry
    instructions: tuple[Instruction, ...] = ()  # reflection instructions (not used by single, retry_only)


@dataclass(frozen=True)
class Turn:
    name: str  # one of TURNS
    by: str  # "base" or "reflector"
    prompt: P.Prompt
    sampling: Sampling
    output: str


@dataclass
class Attempt:
    """One second attempt: a reflection (none in retry_only) and the retry that follows it."""

    instruction: Instruction | None
    sample: int
    reflection: str | None
    retry: str
    turns: list[Turn]


@dataclass
class Trajectory:
    item: Item
    trial1: Turn
    verdict: A.Verdict | None  # trial 1 at the strict (headline) level (gates the second attempt in GATED modes)
    selected: bool  # whether the mode gave this item a second attempt
    feedback: str | None  # the verdict shown to the second attempt (None: no verdict shown)
    attempts: list[Attempt] = field(default_factory=list)
    # what the second attempt is told beyond the verdict (code: the first failing test and its error);
    # None: the verdict alone
    feedback_text: str | None = None


# (turn name, engine, prompts, sampling per prompt) -> one reply per prompt. Callers wrap
# Engine.generate to time, seed and report each pass.
PassRunner = Callable[[str, Engine, Sequence[P.Prompt], Sequence[Sampling]], list[str]]


def generate_pass(turn: str, engine: Engine, prompts: Sequence[P.Prompt], samplings: Sequence[Sampling]) -> list[str]:
    return engine.generate(prompts, list(samplings))


GATED = ("oracle", "retry_only")  # the modes where the trial-1 verdict decides who gets a second attempt


def select(mode: str, verdicts: Sequence[A.Verdict] | None, n: int) -> dict[int, str | None]:
    """{item position: feedback shown} for the items the mode gives a second attempt. Gold decides
    only in the gated modes, at the headline (strict) level."""
    if mode == "single":
        return {}
    if mode == "intrinsic":
        return {i: None for i in range(n)}
    return {i: v.outcome for i, v in enumerate(verdicts) if not v.correct}


def run(items: Sequence[Item], base: Engine, reflector: Engine | None, settings: Settings, *,
        trial1: Sequence[str] | None = None, run_pass: PassRunner = generate_pass) -> list[Trajectory]:
    """The protocol over `items`, in order. `reflector`: the engine that writes reflections (None:
    the base model does); `trial1`: replies already generated for trial 1 (its pass is skipped)."""
    settings.check()
    first_prompts = [P.trial_prompt(it.question, it.shots) for it in items]
    if trial1 is None:
        trial1 = run_pass("trial1", base, first_prompts, [it.sampling for it in items])
    turns = [Turn("trial1", "base", p, it.sampling, out) for it, p, out in zip(items, first_prompts, trial1)]
    # gold is read before generation ends only where it gates the second attempt
    gated = settings.mode in GATED
    verdicts = verdicts_of([t.output for t in turns], items) if gated else None
    shown = select(settings.mode, verdicts, len(items))
    trajectories = [Trajectory(item=it, trial1=t, verdict=None, selected=i in shown, feedback=shown.get(i),
                               feedback_text=verdicts[i].feedback if i in shown and gated else None)
                    for i, (it, t) in enumerate(zip(items, turns))]
    if shown:
        _second_attempts([trajectories[i] for i in shown], base, reflector, settings, run_pass)
    if not gated:
        verdicts = verdicts_of([t.output for t in turns], items)
    for t, v in zip(trajectories, verdicts):
        t.verdict = v
    return trajectories


def verdicts_of(replies: Sequence[str], items: Sequence[Item]) -> list[A.Verdict]:
    """The headline verdicts of one reply per item, a whole pass at once (code runs in parallel)."""
    return A.score_many((reply, it.question.answer, it.question.spec) for reply, it in zip(replies, items))


def _second_attempts(todo: list[Trajectory], base: Engine, reflector: Engine | None, settings: Settings,
                     run_pass: PassRunner) -> None:
    writer, who = (reflector, "reflector") if reflector is not None else (base, "base")
    if settings.mode == "retry_only":
        jobs = [(t, None, 0) for t in todo]
    else:
        jobs = [(t, ins, k) for t in todo for ins in t.item.instructions for k in range(settings.samples)]
        missing = [t.item.question.id for t in todo if not t.item.instructions]
        if missing:
            raise UserError(f"no reflection instruction for {missing[0]} (mode {settings.mode} reflects)")
    if settings.one_stage:
        _one_stage(jobs, writer, who, settings, run_pass)
        return
    reflections: list[str | None] = [None] * len(jobs)
    reflection_turns: list[Turn | None] = [None] * len(jobs)
    if settings.mode != "retry_only":
        ps = [P.reflection_prompt(t.item.question, t.trial1.output, ins, t.feedback, t.feedback_text)
              for t, ins, _ in jobs]
        outs = run_pass("reflection", writer, ps, [settings.reflection] * len(ps))
        reflections = list(outs)
        reflection_turns = [Turn("reflection", who, p, settings.reflection, out) for p, out in zip(ps, outs)]
    retry_engine, retry_who = (writer, who) if settings.retry_by == "reflector" else (base, "base")
    ps = [P.retry_prompt(t.item.question, t.trial1.output, r, t.feedback, t.item.shots, t.feedback_text)
          for (t, _, _), r in zip(jobs, reflections)]
    samplings = [settings.retry_sampling(t.item.sampling) for t, _, _ in jobs]
    outs = run_pass("retry", retry_engine, ps, samplings)
    for (t, ins, k), r, rt, p, s, out in zip(jobs, reflections, reflection_turns, ps, samplings, outs):
        turns = ([rt] if rt is not None else []) + [Turn("retry", retry_who, p, s, out)]
        t.attempts.append(Attempt(instruction=ins, sample=k, reflection=r, retry=out, turns=turns))


def _one_stage(jobs, writer: Engine, who: str, settings: Settings, run_pass: PassRunner) -> None:
    """Setting I: the reflection and the corrected solution in one reply, within the two caps."""
    refl = settings.reflection
    answer_cap = max(settings.retry_sampling(t.item.sampling).max_new_tokens for t, _, _ in jobs)
    s = Sampling(max_new_tokens=refl.max_new_tokens + answer_cap,
                 temperature=refl.temperature, top_p=refl.top_p, stop=())
    ps = [P.one_stage_prompt(t.item.question, t.trial1.output, ins, t.feedback, t.feedback_text)
          for t, ins, _ in jobs]
    outs = run_pass("one_stage", writer, ps, [s] * len(ps))
    for (t, ins, k), p, out in zip(jobs, ps, outs):
        reflection, corrected = P.split_one_stage(out)
        t.attempts.append(Attempt(instruction=ins, sample=k, reflection=reflection, retry=corrected,
                                  turns=[Turn("one_stage", who, p, s, out)]))
