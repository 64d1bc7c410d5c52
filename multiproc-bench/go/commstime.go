// Commstime with goroutines and unbuffered channels, as multiproc's
// light-process row runs it: prints the nanoseconds per communication.
package main

import (
	"fmt"
	"time"
)

const values = 20000

func main() {
	a, b, c, d := make(chan uint64), make(chan uint64), make(chan uint64), make(chan uint64)
	go func() { // prefix
		a <- 0
		for v := range d {
			a <- v
		}
	}()
	go func() { // delta
		for v := range a {
			b <- v
			c <- v
		}
	}()
	go func() { // successor
		for v := range c {
			d <- v + 1
		}
	}()
	for i := 0; i < values; i++ {
		<-b
	}
	start := time.Now()
	for i := 0; i < values; i++ {
		<-b
	}
	per := time.Since(start).Nanoseconds() / (values * 4)
	fmt.Println(per)
}
