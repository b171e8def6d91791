package broker

// Coalesces reports whether c gathers each Send's writes into one.
func Coalesces(c *Conn) bool { return c.out != nil }
