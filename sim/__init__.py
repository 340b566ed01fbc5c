"""cocotb testbenches that run the generated Verilog on Icarus and Verilator."""
