"""``python -m dlfa_models.e5_offline OUT_DIR [--source FILE]``, the documented command: the converter
itself is :mod:`dlfa_models.encoders.e5_offline`."""
from .encoders.e5_offline import main

if __name__ == "__main__":
    main()
