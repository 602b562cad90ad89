"""Transformers-backed ALMs: the adapter base every open-weights architecture extends
(`adapter.TransformersAdapter`), the class-name constraint, and the decoding engine."""
