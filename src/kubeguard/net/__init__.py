"""Network lane: capture, flows, reassembly, protocol identification, L7 parsing, detectors."""
