"""Readers for the files other labelling tools write: a Label Studio JSON export, an Argilla v2 dataset saved
with ``Dataset.to_disk`` (uploaded as a zip), and OpenAssistant's published message-tree JSONL. Each reader
turns its tool's file into ``records.PeerRecord`` entries (items with their candidates, judgements and edited
answers, each judgement naming the tool's own annotator), ``records.PeerDropped`` notes (what could not be
mapped, and why) and ``parsing.LineError`` errors, so ``annotation.importing`` imports them through the same
pipeline as its own JSONL. Pure Python, no Django."""
