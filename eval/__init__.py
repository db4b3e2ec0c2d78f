"""Evaluation: rubrics, the LLM judge, human ratings, agreement, statistics, studies and reports."""
