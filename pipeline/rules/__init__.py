"""The building blocks of the gathering rules, each judged over time on one signal.

``persistence`` says whether a condition has held long enough despite missed samples,
``rise`` finds fast increases of a count, ``severity`` maps counts and densities to levels.
``pipeline.gathering`` combines them into episodes.
"""
