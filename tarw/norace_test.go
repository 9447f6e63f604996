//go:build !race

package tarw

const raceEnabled = false
