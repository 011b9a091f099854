"""The one record type every question source produces."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from reflectevo_tasks.answers import AnswerSpec


@dataclass(frozen=True)
class Question:
    id: str  # stable across runs and machines: "<source>/<index>"; MATH "math/<line>", MBPP "mbpp/<task_id>"
    source: str  # e.g. "bbh/date_understanding", "bigbench/anachronisms", "custom/gsm8k", "math/algebra", "mbpp"
    index: int  # position in the source, as published
    question: str  # the text shown to the model (options included, BBH style)
    answer: str  # gold answer as published
    kind: str  # answer kind, see reflectevo_tasks.answers.KINDS
    options: tuple[tuple[str, str], ...] = ()
    vocabulary: tuple[str, ...] = ()
    # code: the assert statements an answer must pass, and the code run before them
    tests: tuple[str, ...] = ()
    setup: str = ""

    @property
    def spec(self) -> AnswerSpec:
        return AnswerSpec(self.kind, self.options, self.vocabulary, question=self.question, tests=self.tests,
                          setup=self.setup)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["options"] = [list(o) for o in self.options]
        d["vocabulary"] = list(self.vocabulary)
        # only code questions have tests: every other record keeps the fields it always had
        d.pop("tests"), d.pop("setup")
        if self.tests or self.setup:
            d.update(tests=list(self.tests), setup=self.setup)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Question":
        return cls(
            id=d["id"], source=d["source"], index=int(d["index"]), question=d["question"],
            answer=d["answer"], kind=d["kind"],
            options=tuple(tuple(o) for o in d.get("options") or ()),
            vocabulary=tuple(d.get("vocabulary") or ()),
            tests=tuple(d.get("tests") or ()), setup=d.get("setup") or "",
        )
