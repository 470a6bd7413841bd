"""L7 parsers: turn a reassembled byte stream of one protocol into metadata and inspection records."""
