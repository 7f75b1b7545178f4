//go:build race

package waf

// raceEnabled: the race detector slows CRS about twentyfold; informational
// scans are skipped under it.
const raceEnabled = true
