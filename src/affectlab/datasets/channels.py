"""Channel orders of the released files."""

DEAP_EEG = [
    "Fp1", "AF3", "F3", "F7", "FC5", "FC1", "C3", "T7", "CP5", "CP1", "P3", "P7", "PO3", "O1",
    "Oz", "Pz", "Fp2", "AF4", "Fz", "F4", "F8", "FC6", "FC2", "Cz", "C4", "T8", "CP6", "CP2",
    "P4", "P8", "PO4", "O2",
]
DEAP_PERIPHERAL = ["hEOG", "vEOG", "zEMG", "tEMG", "GSR", "Respiration", "Plethysmograph",
                   "Temperature"]

SEED_EEG = [
    "FP1", "FPZ", "FP2", "AF3", "AF4", "F7", "F5", "F3", "F1", "FZ", "F2", "F4", "F6", "F8",
    "FT7", "FC5", "FC3", "FC1", "FCZ", "FC2", "FC4", "FC6", "FT8", "T7", "C5", "C3", "C1", "CZ",
    "C2", "C4", "C6", "T8", "TP7", "CP5", "CP3", "CP1", "CPZ", "CP2", "CP4", "CP6", "TP8", "P7",
    "P5", "P3", "P1", "PZ", "P2", "P4", "P6", "P8", "PO7", "PO5", "PO3", "POZ", "PO4", "PO6",
    "PO8", "CB1", "O1", "OZ", "O2", "CB2",
]

EMOTIV_EEG = ["AF3", "F7", "F3", "FC5", "T7", "P7", "O1", "O2", "P8", "T8", "FC6", "F4", "F8",
              "AF4"]

MAHNOB_CHANNELS = DEAP_EEG + [f"EXG{i}" for i in range(1, 9)] + [
    "GSR1", "GSR2", "Erg1", "Erg2", "Resp", "Temp", "Status",
]

BANDS = ("delta", "theta", "alpha", "beta", "gamma")


def hemisphere(name: str) -> int:
    """-1 for a left-hemisphere electrode, +1 right, 0 midline (10-20 digit convention)."""
    digits = "".join(ch for ch in name if ch.isdigit())
    if not digits:
        return 0
    return -1 if int(digits) % 2 == 1 else 1


def is_frontal(name: str) -> bool:
    return name.upper().startswith(("FP", "AF", "F"))
