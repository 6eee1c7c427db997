"""``sharpeyes eval``: the detector and the gathering rules measured on annotated footage.

``annotations`` reads ground truth (MOT Challenge gt.txt, a CSV of counts, the Mall JSON),
``footage`` reads the frames (a video or a folder), ``metrics`` scores counts and episodes,
``plot`` draws predicted against true counts, ``runner`` puts them together and writes the
report. docs/gathering.md describes the method.
"""
