package main

import "fmt"

func main() {
	b := make([]byte, 1<<30)
	for i := range b {
		b[i] = 1
	}
	fmt.Println(len(b))
}
