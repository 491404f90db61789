"""Real-world trials: `log` (the append-only trial log), `report` (statistics and plots against simulation),
`cli` (pirl-trials)."""
