package main

import "fmt"

func main() {
	n := 0
	for i := 0; ; i++ {
		n += i % 7
		if n < 0 {
			fmt.Println(n)
		}
	}
}
