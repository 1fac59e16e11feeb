class A(metaclass=type):
    def _x(self, __y=1):
        global _z
        return getattr(self, "__class__")
