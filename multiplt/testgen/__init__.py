"""Step 1b: an LLM writes asserts for each corpus function; the sandbox keeps the passing ones,
measures their statement coverage and infers types from the values they see (`multiplt testgen`)."""
