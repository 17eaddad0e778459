"""HumanEval-format sources -> MultiPL-E-style problems in every language (`multiplt benchmark`)."""
