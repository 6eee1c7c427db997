"""SharpEyes' composition root: the ``sharpeyes`` command, the whole-config schema, the demo.

The only package allowed to import all the others; each subcommand imports what it needs
lazily, so ``sharpeyes api`` never loads the inference stack.
"""
