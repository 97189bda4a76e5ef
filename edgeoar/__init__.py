"""edgeoar: online action recognition on edge devices with early exits (EdgeOAR: TFEM, IIE and
modality-consistency exit fusion).

Not implemented yet: this package is a placeholder and exposes nothing.
"""
