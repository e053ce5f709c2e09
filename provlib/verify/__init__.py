"""Verifying a suspect found in the wild against the owner's evidence (notebook 08, ``python -m provlib verify``).

``keyfile`` fixes the evidence before any suspect is seen; ``suspects`` and ``endpoint`` give the three kinds of
suspect one ``answer`` call; ``attribution`` decides; ``report`` writes the verdict; ``api`` is the call the command
line and the notebook share.
"""
