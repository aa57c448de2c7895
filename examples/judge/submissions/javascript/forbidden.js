require('child_process').execFileSync('/bin/true');
console.log(5);
