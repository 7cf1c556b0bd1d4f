"""The one error type of qkcapture."""
from __future__ import annotations

from typing import Optional


class CaptureError(ValueError):
    """Invalid input to the writer or to a capture frontend, or an invalid capture on reading.

    `field` names what is wrong (`tokens`, `keys[3].labels`, `q[layer 5]`, `capture.json: version`),
    `prompt` the prompt (example) id when the error concerns one prompt, `message` says what is
    wrong. Picklable, so it crosses process boundaries (multiprocessing, DataLoader workers).
    """

    def __init__(self, field: str, message: str, prompt: Optional[str] = None):
        self.field = field
        self.prompt = prompt
        self.message = message
        where = f"prompt {prompt!r}: " if prompt is not None else ""
        super().__init__(f"{where}{field}: {message}")

    def __reduce__(self):
        return (type(self), (self.field, self.message, self.prompt))
