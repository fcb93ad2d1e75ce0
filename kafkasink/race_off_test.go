//go:build !race

package kafkasink

const raceEnabled = false
