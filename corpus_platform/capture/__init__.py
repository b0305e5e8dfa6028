"""App-side capture: log interactions and feedback into the conversations landing folder (stdlib only)."""

from corpus_platform.capture.logger import FEEDBACK_KINDS, ConversationLogger, day_of_id, uuid7_hex

__all__ = ["ConversationLogger", "FEEDBACK_KINDS", "day_of_id", "uuid7_hex"]
