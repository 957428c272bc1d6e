"""One module per device kind: states, transition table and guards."""
