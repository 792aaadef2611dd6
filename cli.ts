#!/usr/bin/env node
// The vmtap command (issue 5): being written.
console.error('vmtap: the command line is not implemented yet')
process.exit(2)
