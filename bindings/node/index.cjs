'use strict';
// CommonJS entry: require('norman').
module.exports = require('./lib/client.cjs');
