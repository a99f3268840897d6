"""The ground floor: plumbing every app may use (errors, ids from outside, pagination and list filters,
on-commit dispatch, row hydration, artifact storage, the code version). No models; imports no app."""
