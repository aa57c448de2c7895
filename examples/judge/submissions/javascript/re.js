null.x = require('fs').readFileSync(0, 'utf8');
