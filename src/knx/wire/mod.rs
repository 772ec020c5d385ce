//! KNX wire formats (cEMI, TPCI/APCI, KNXnet/IP): parse and emit, no I/O.
