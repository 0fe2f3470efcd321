"""The paper's sections, one module per part (method, planted, checks, results, hypotheses, cot, findings,
reproduce): what each shows, computed from the results files; paper/index.qmd's cells call them."""
