"""Subcommands of ``sharpeyes``, one module per topic; heavy imports stay inside them."""
