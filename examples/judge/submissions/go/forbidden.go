package main

import (
	"fmt"
	"os/exec"
)

func main() {
	err := exec.Command("/bin/true").Run()
	fmt.Println(5, err)
}
