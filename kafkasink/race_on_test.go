//go:build race

package kafkasink

const raceEnabled = true
