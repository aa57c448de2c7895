const b = Buffer.alloc(1 << 30, 1); /* filled: touched */
console.log(b.length);
