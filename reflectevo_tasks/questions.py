"""The one record type every question source produces."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from reflectevo_tasks.answers import AnswerSpec


@dataclass(frozen=True)
class Question:
    id: str  # stable across runs and machines: "<source>/<index>"
    source: str  # e.g. "bbh/date_understanding", "bigbench/anachronisms", "custom/gsm8k"
    index: int  # position in the source, as published
    question: str  # the text shown to the model (options included, BBH style)
    answer: str  # gold answer as published
    kind: str  # answer kind, see reflectevo_tasks.answers.KINDS
    options: tuple[tuple[str, str], ...] = ()
    vocabulary: tuple[str, ...] = ()

    @property
    def spec(self) -> AnswerSpec:
        return AnswerSpec(self.kind, self.options, self.vocabulary, question=self.question)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["options"] = [list(o) for o in self.options]
        d["vocabulary"] = list(self.vocabulary)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Question":
        return cls(
            id=d["id"], source=d["source"], index=int(d["index"]), question=d["question"],
            answer=d["answer"], kind=d["kind"],
            options=tuple(tuple(o) for o in d.get("options") or ()),
            vocabulary=tuple(d.get("vocabulary") or ()),
        )
