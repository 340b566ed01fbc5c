// The clock of sim/tb_compiled.v under Verilator (built with TCONV_CLOCK_FROM_MAIN, without
// --timing): a 10 ns period, each half an eval of the model, until the testbench's $finish.
#include <cstdint>
#include <memory>

#include "Vtconv_tb.h"
#include "verilated.h"

int main(int argc, char** argv) {
    const std::unique_ptr<VerilatedContext> context{new VerilatedContext};
    context->threads(1);
    context->commandArgs(argc, argv);
#if VM_TRACE
    context->traceEverOn(true);  // built with --trace: the testbench's $dumpvars (+waves=FILE) may open a dump
#endif
    const std::unique_ptr<Vtconv_tb> tb{new Vtconv_tb{context.get(), ""}};
    std::uint64_t half_period = 5;  // 5 ns in the time precision's units (1 ps: 5000)
    for (int unit = -9; unit > context->timeprecision(); --unit) half_period *= 10;
    tb->clk = 0;
    tb->eval();
    while (!context->gotFinish()) {
        context->timeInc(half_period);
        tb->clk = !tb->clk;
        tb->eval();
    }
    tb->final();
    return 0;
}
