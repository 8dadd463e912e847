"""Sample sequencer: pixel intake, the ``T + 1`` forward phases, arg-max, result.

Schedule (docs/architecture.md, "Schedule"). A sample is ``T + 1`` phases. In
phase ``s`` the encoder computes step ``s`` (if ``s < T``) while every core
computes its step ``s - 1`` (if ``s >= 1``) from the spike vector its producer
wrote in phase ``s - 1``: the spec's one-step delay for layers > 0, and none for
layer 0 because the encoder runs one phase ahead. A phase starts with ``LAUNCH``
(the spike vectors are copied for the scanners, the blocks started) and ends
when every block is done (a barrier, ``WAIT``). In phase 0 the cores clear their
membranes instead of scanning.

States::

    IDLE --last pixel--> [LABEL --> [MASK]] --> (LAUNCH --> WAIT) x (T + 1)
         --> ARGMAX --> [LEARN] --> RESULT --> IDLE

The bracketed states are a training sample's (``MODE = TRAINING``): the label
transfer after the pixels, the dropout draws, and after the arg-max the backward
and update passes of :class:`rtl.training_sequencer.TrainingSequencer`. ``busy``
is high in every state but ``IDLE``, ``LABEL`` and ``RESULT``, and every busy
cycle counts in ``CYCLES``.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from desire.config import Config
from golden.fixed import constants
from rtl import check_int, index_shape
from rtl.encoder import PIXEL_BITS
from rtl.register_map import Mode

__all__ = ["Sequencer"]


class Sequencer(wiring.Component):
    """Sequencer of samples of ``n_in`` pixels (``lanes`` per encoder word), ``tsteps``
    steps and ``n_layers`` cores (scanner and core pairs); ``training``: the training
    states exist; ``dropout``: a training sample draws dropout masks (``MASK``);
    ``fire_passes``: the sequencer starts each core's fire pass (``fire``).

    Ports
    -----
    pixels : In(stream.Signature(8))
        The sample's pixels in index order, then (training) the label. Ready in
        ``IDLE`` and ``LABEL`` only.
    mode : In(1)
        ``Mode.TRAINING``: the sample is trained. Looked at when the last pixel is
        taken and when the arg-max ends; must hold still in between.
    pix_word, pix_lane, pix_data, pix_we : Out
        The encoder's pixel write port: pixel ``pix_word * lanes + pix_lane``.
    sample_start : Out(1)
        Strobe: the last pixel was taken (counters and spike vectors restart).
    label : Out(8)
        The training sample's label (registered, from the transfer after the pixels).
    busy : Out(1)
        A sample runs and this cycle counts in ``CYCLES``.
    draw : Out(1)
        ``MASK``: one dropout draw this cycle.
    draw_last : In(1)
        The draw of this cycle is the sample's last.
    phase : Out(range(T + 1))
        The running phase (registered; 0 from ``sample_start``).
    launch : Out(1)
        Strobe: the phase starts; the producers' spike vectors are copied for the
        scanners.
    encoder_start, encoder_first : Out(1)
        With ``launch``: the encoder computes step ``phase`` (phases below ``T``),
        the first of the sample in phase 0.
    encoder_busy : In(1)
    clear : Out(1)
        With ``launch`` in phase 0: the cores clear their membranes.
    scan : Out(1)
        With ``launch`` in phases 1 .. T: the scanners start on the copies.
    scan_done, core_idle : In(n_layers)
        Bit ``l``: scanner ``l`` has handed out every index; core ``l`` is idle.
    fire : Out(n_layers), with ``fire_passes`` only
        Bit ``l``: core ``l``'s fire pass, once per phase 1 .. T, in the first
        cycle its scanner is done and the core idle. Without ``fire_passes`` the
        datapath issues its own fire passes (the shared pool's
        :class:`rtl.step_scanner.StepScanner`), and a phase ends when every scanner
        is done and every core idle.
    argmax, argmax_last : Out(1), In(1)
        ``ARGMAX``: one arg-max step (:class:`rtl.class_counter.ClassCounter`);
        ``argmax_last`` marks the last.
    learn, learn_done : Out(1), In(1)
        Strobe with the last arg-max step of a training sample: start the backward
        and update passes; ``learn_done`` in their last cycle.
    result_valid, result_ready : Out(1), In(1)
        ``RESULT``: the result stream's handshake; the next sample's pixels are
        taken from the cycle after the transfer.
    """

    def __init__(
        self,
        n_in: int,
        lanes: int,
        tsteps: int,
        n_layers: int,
        *,
        training: bool,
        dropout: bool,
        fire_passes: bool = True,
    ) -> None:
        self._n_in = check_int("n_in", n_in, 1)
        self._lanes = check_int("lanes", lanes, 1)
        self._tsteps = check_int("tsteps", tsteps, 1)
        self._n_layers = check_int("n_layers", n_layers, 1)
        for name, flag in (
            ("training", training),
            ("dropout", dropout),
            ("fire_passes", fire_passes),
        ):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be a bool, not {flag!r}")
        if dropout and not training:
            raise ValueError("dropout needs training: masks are drawn for training samples only")
        self._training, self._dropout, self._fire_passes = training, dropout, fire_passes
        self._words = -(-n_in // lanes)
        super().__init__(
            {
                "pixels": In(stream.Signature(PIXEL_BITS)),
                "mode": In(1),
                "pix_word": Out(index_shape(self._words)),
                "pix_lane": Out(index_shape(lanes)),
                "pix_data": Out(PIXEL_BITS),
                "pix_we": Out(1),
                "sample_start": Out(1),
                "label": Out(PIXEL_BITS),
                "busy": Out(1),
                "draw": Out(1),
                "draw_last": In(1),
                "phase": Out(range(tsteps + 1)),
                "launch": Out(1),
                "encoder_start": Out(1),
                "encoder_first": Out(1),
                "encoder_busy": In(1),
                "clear": Out(1),
                "scan": Out(1),
                "scan_done": In(n_layers),
                "core_idle": In(n_layers),
                **({"fire": Out(n_layers)} if fire_passes else {}),
                "argmax": Out(1),
                "argmax_last": In(1),
                "learn": Out(1),
                "learn_done": In(1),
                "result_valid": Out(1),
                "result_ready": In(1),
            }
        )

    @classmethod
    def for_config(cls, cfg: Config) -> Sequencer:
        """The sequencer of ``cfg``'s architecture: per layer a scanner, a core and a fire
        pass it starts; or (``shared``) one scanner and core that fire on their own."""
        c = constants(cfg)
        training = cfg.hardware.training
        shared = cfg.hardware.architecture == "shared"
        return cls(
            c.layers[0],
            cfg.hardware.lanes,
            c.tsteps,
            1 if shared else c.n_linear,
            training=training,
            dropout=training and any(p > 0 for p in c.drop_p[: c.n_linear]),
            fire_passes=not shared,
        )

    def elaborate(self, platform: object) -> Module:
        m = Module()
        n_in, tsteps = self._n_in, self._tsteps
        # the pixel index, and whether it is the sample's last, kept in registers so that
        # the sample start (which clears counters) hangs off one flip-flop
        pix_next = Signal(range(n_in + 1))
        last_pixel = Signal(init=n_in == 1)
        fired = Signal(self._n_layers)
        phase = self.phase
        m.d.comb += self.pix_data.eq(self.pixels.payload)

        with m.FSM() as fsm:
            with m.State("IDLE"):
                m.d.comb += self.pixels.ready.eq(1)
                with m.If(self.pixels.valid):
                    m.d.comb += self.pix_we.eq(1)
                    m.d.sync += [self.pix_lane.eq(self.pix_lane + 1), pix_next.eq(pix_next + 1)]
                    with m.If(self.pix_lane == self._lanes - 1):
                        m.d.sync += [self.pix_lane.eq(0), self.pix_word.eq(self.pix_word + 1)]
                    m.d.sync += last_pixel.eq(pix_next == n_in - 2)  # the next one is
                    with m.If(last_pixel):
                        m.d.comb += self.sample_start.eq(1)
                        m.d.sync += [self.pix_lane.eq(0), self.pix_word.eq(0), pix_next.eq(0)]
                        m.d.sync += [phase.eq(0), last_pixel.eq(n_in == 1)]
                        if self._training:
                            with m.If(self.mode == Mode.TRAINING):
                                m.next = "LABEL"
                            with m.Else():
                                m.next = "LAUNCH"
                        else:
                            m.next = "LAUNCH"
            if self._training:
                with m.State("LABEL"):
                    m.d.comb += self.pixels.ready.eq(1)
                    with m.If(self.pixels.valid):
                        m.d.sync += self.label.eq(self.pixels.payload)
                        m.next = "MASK" if self._dropout else "LAUNCH"
            if self._dropout:
                with m.State("MASK"):  # one dropout draw per neuron of the layers with dropout
                    m.d.comb += [self.busy.eq(1), self.draw.eq(1)]
                    with m.If(self.draw_last):
                        m.next = "LAUNCH"
            with m.State("LAUNCH"):
                m.d.comb += [
                    self.busy.eq(1),
                    self.launch.eq(1),
                    self.encoder_start.eq(phase != tsteps),
                    self.encoder_first.eq(phase == 0),
                    self.clear.eq(phase == 0),
                    self.scan.eq(phase != 0),
                ]
                m.d.sync += fired.eq(0)
                m.next = "WAIT"
            with m.State("WAIT"):
                m.d.comb += self.busy.eq(1)
                running = phase != 0
                done = [~self.encoder_busy]
                for l in range(self._n_layers):
                    idle = self.core_idle[l]
                    if not self._fire_passes:
                        done.append(idle & self.scan_done[l])
                        continue
                    with m.If(running & ~fired[l] & self.scan_done[l] & idle):
                        m.d.comb += self.fire[l].eq(1)
                        m.d.sync += fired[l].eq(1)
                    done.append(idle & (~running | fired[l]))
                with m.If(Cat(*done).all()):
                    with m.If(phase == tsteps):
                        m.next = "ARGMAX"
                    with m.Else():
                        m.d.sync += phase.eq(phase + 1)
                        m.next = "LAUNCH"
            with m.State("ARGMAX"):
                m.d.comb += [self.busy.eq(1), self.argmax.eq(1)]
                with m.If(self.argmax_last):
                    if self._training:
                        with m.If(self.mode == Mode.TRAINING):
                            m.d.comb += self.learn.eq(1)
                            m.next = "LEARN"
                        with m.Else():
                            m.next = "RESULT"
                    else:
                        m.next = "RESULT"
            if self._training:
                with m.State("LEARN"):  # the training sequencer's backward and update passes
                    m.d.comb += self.busy.eq(1)
                    with m.If(self.learn_done):
                        m.next = "RESULT"
            with m.State("RESULT"):
                m.d.comb += self.result_valid.eq(1)
                with m.If(self.result_ready):
                    m.next = "IDLE"
        # one-hot, so that every state test is one bit (yosys keeps the binary code Amaranth
        # picks otherwise: it does not recode a register with an initial value)
        fsm.state.attrs["fsm_encoding"] = "one-hot"
        return m
