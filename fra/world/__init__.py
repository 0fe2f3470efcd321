"""The planted-concept world: seeded corpus with known induction ground truth, toy model, its SAEs."""
