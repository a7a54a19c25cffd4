"""Running what the composition root built: a serving process's `Runtime` (start, stop, reload on SIGHUP) and
`tollway worker`'s `Worker`. Nothing here decides how objects are built (`tollway.wiring`, `tollway.bootstrap`)."""
